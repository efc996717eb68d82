"""The console's charts are drawn in a real browser under the pages' strict CSP."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.console.conftest import corp  # noqa: F401  (fixture)
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import base  # noqa: F401  (fixture)


def test_segments_page_draws_its_charts(page: Any, live_server: Any, db_session: Any, sign_in_browser: Any,
                                        page_errors: list[str]) -> None:
    from crm.models import Customer, FollowRelation

    for i, stage in enumerate(["意向客户", "意向客户", "成交客户"]):
        customer = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_chart{i}", name=f"客户{i}", stage=stage)
        db_session.add(customer)
        db_session.flush()
        db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid="boss"))
    sign_in_browser("boss", "admin")
    page.goto(live_server.url + "/console/segments")
    canvas = page.locator("#chart-stages")
    canvas.wait_for()
    # Chart.js attached a chart to the canvas and drew it with the page's data
    assert page.evaluate("() => { const c = Chart.getChart('chart-stages'); return c && c.data.datasets[0].data; }") \
        == [0, 2, 1, 0, 0, 0]
    assert canvas.bounding_box()["height"] > 100
    assert not page_errors, page_errors  # no CSP violation, no script error


def test_segment_builder_counts_as_conditions_change_and_saves(page: Any, live_server: Any, db_session: Any,
                                                               base: Any, sign_in_browser: Any,
                                                               page_errors: list[str]) -> None:
    """The live count follows each click (no submit), shows a sample, explains a refused filter in
    plain words, and the segment saved from it is listed with its size."""
    from crm.models import Tag

    sign_in_browser("laowang", "admin")
    page.goto(live_server.url + "/console/segments/new")
    count = page.locator("#segment-count")
    page.wait_for_function("() => document.getElementById('segment-count').textContent === '3'")  # a, b, c
    page.get_by_label("A类").first.check()
    page.wait_for_function("() => document.getElementById('segment-count').textContent === '2'")
    assert sorted(page.locator("#segment-sample li").all_inner_texts()) == ["客户a 意向客户", "客户b 成交客户"]
    page.locator("input[name=stage][value='成交客户']").check()
    page.wait_for_function("() => document.getElementById('segment-count').textContent === '1'")
    assert page.locator("#segment-sample li").all_inner_texts() == ["客户b 成交客户"]

    # a tag deleted meanwhile (in WeCom, by someone else): the count says why it cannot be computed
    db_session.execute(Tag.__table__.update().where(Tag.tag_id == base.tags["教育"])
                       .values(deleted_at=dt.datetime.now(dt.timezone.utc)))
    db_session.commit()
    page.get_by_label("教育").first.check()
    page.wait_for_function("() => document.getElementById('segment-error').textContent.includes('标签已被删除')")
    assert count.inner_text() == "—"
    page.get_by_label("教育").first.uncheck()
    page.wait_for_function("() => document.getElementById('segment-count').textContent === '1'")
    assert page.locator("#segment-error").inner_text() == ""

    page.fill("input[name=name]", "A类成交")
    page.locator("button[value=save]").click()
    page.wait_for_url("**/console/segments")
    row = page.locator("table tr", has_text="A类成交")
    assert row.locator("td.num").inner_text() == "1"
    # the refused count answered 400 (the browser logs it too); nothing else failed
    assert [e for e in page_errors if "/segments/count" not in e and "status of 400" not in e] == []


def test_overview_draws_campaign_delivery_and_handover_outcomes(page: Any, live_server: Any, db_session: Any,
                                                                 corp: Any, sign_in_browser: Any,
                                                                 page_errors: list[str]) -> None:
    """The two sections of the overview that read the campaigns and the handovers: stacked bars per
    campaign (with its delivery rate) and per takeover colleague, a bar per outcome; names, not userids.
    The screenshot: tests/screenshots/console-overview-campaigns-handover.png."""
    import os

    from console.overview.refresh import refresh
    from tests.console.conftest import NOW
    from tests.console.test_overview_campaigns_handover import _campaigns, _jobs

    _campaigns(db_session)
    _jobs(db_session)
    refresh(TEST_CORP_ID, now=NOW)
    db_session.commit()
    sign_in_browser("boss", "admin")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server.url + "/console/?from=2026-11-05&to=2026-12-04")
    page.locator("#chart-campaigns").wait_for()
    campaigns = page.evaluate("""() => { const c = Chart.getChart('chart-campaigns');
        return c && {labels: c.data.labels, stacked: c.options.scales.x.stacked,
                     sets: c.data.datasets.map(d => [d.label, d.data])}; }""")
    assert campaigns["labels"] == [["双十二预热", "送达率 60.0%"], ["老客户回访", "送达率 100.0%"]]
    assert campaigns["stacked"] is True
    assert campaigns["sets"] == [["已送达", [6, 4]], ["等待成员发送", [1, 0]], ["成员未发送", [1, 0]],
                                 ["非好友", [1, 0]], ["已达接收上限", [1, 0]]]
    outcomes = page.evaluate("() => { const c = Chart.getChart('chart-handover'); return [c.data.labels, c.data.datasets[0].data]; }")
    assert outcomes == [["已接替", "等待接替", "客户拒绝", "接替成员已达上限", "无接替记录", "转接失败", "无法转接"],
                        [3, 1, 1, 1, 1, 1, 1]]
    assert page.evaluate("() => Chart.getChart('chart-takeovers').data.labels") == ["王五", "张三"]
    assert page.locator("#takeovers-table tbody tr").first.locator("td").first.inner_text() == "王五"
    assert "60.0%" in page.locator("#campaigns-table").inner_text()
    section = page.locator("#section-campaigns")
    section.scroll_into_view_if_needed()
    shots = os.path.join(os.path.dirname(__file__), "..", "screenshots")
    os.makedirs(shots, exist_ok=True)
    page.screenshot(path=os.path.join(shots, "console-overview-campaigns-handover.png"), full_page=True)
    assert not page_errors, page_errors
