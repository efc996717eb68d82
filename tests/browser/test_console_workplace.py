"""The console as a workplace and the 360° sidebar, looked at in Chromium on the demo corp (the emulator
seeded as the demo's corp, synced, with the demo's activity): every console page at a desktop size,
every sidebar view at a phone size, no console error and no failed request anywhere, a screenshot of
each under tests/screenshots/ (console-*.png, sidebar-*.png)."""

from __future__ import annotations

import base64
import csv
import io
import os
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from tests.console.conftest import DemoCorp, demo_corp, demo_emu  # noqa: F401  (fixtures)
from tests.helpers import TEST_CORP_ID

# The demo corp (3,000 customers synced, their activity written through the services) takes a while to
# build, more on PostgreSQL: each test may take longer than the suite's default.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}  # an iPhone 14
# WeCom's avatar CDN stands in as a one-pixel PNG (the tests never reach the internet)
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture()
def demo_mode(monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    """The demo runs in demo mode (its emulator's avatars are plain http, which the demo's CSP allows)."""
    from core.settings import settings

    with app.app_context():
        monkeypatch.setattr(settings(), "SCRM_DEMO", True)


@pytest.fixture()
def look(page: Any, page_errors: list[str]) -> Callable[..., None]:
    """`look(name, url=None, size=DESKTOP, allow=())`: (open and) screenshot a page; fail on any error on it."""
    os.makedirs(SHOTS, exist_ok=True)
    page.route("**/wx.qlogo.cn/**", lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))

    def shoot(name: str, url: str | None = None, size: dict[str, int] = DESKTOP, allow: tuple[str, ...] = ()) -> None:
        page.set_viewport_size(size)
        if url is not None:
            page_errors.clear()
            page.goto(url)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
        unexpected = [e for e in page_errors if not any(a in e for a in allow)]
        assert unexpected == [], (name, unexpected)
        page_errors.clear()

    return shoot


def _charts_have_data(page: Any) -> dict[str, float]:
    """Every chart canvas on the page: Chart.js drew it, and the sum of its data (each must be > 0)."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('canvas[data-chart]'))
        .map(c => { const chart = Chart.getChart(c);
                    return [c.id, chart ? chart.data.datasets.reduce((s, d) => s + d.data.reduce((a, b) => a + Math.abs(b), 0), 0) : -1]; }))""")


def _manager_customer(db_session: Any, team: set[str]) -> tuple[str, str, str, str]:
    """A customer of the manager's team with a tag and a channel: (name, external_userid, tag_id, state)."""
    from crm.models import Customer, FollowRelation, Tag, TagAssignment

    row = db_session.execute(
        select(Customer.name, Customer.external_userid, Tag.tag_id, FollowRelation.state)
        .join(FollowRelation, FollowRelation.customer_id == Customer.id)
        .join(TagAssignment, TagAssignment.relation_id == FollowRelation.id).join(Tag, Tag.id == TagAssignment.tag_pk)
        .where(FollowRelation.userid.in_(sorted(team)), FollowRelation.status == "active", FollowRelation.state != "",
               func.length(Customer.name) >= 2)
        .order_by(Customer.external_userid).limit(1)).one()
    return row[0], row[1], row[2], row[3]


def test_the_console_and_the_sidebar_on_the_demo_corp(page: Any, live_server: Any, db_session: Any,
                                                      demo_corp: DemoCorp, demo_mode: None, sign_in_browser: Any,
                                                      look: Callable[..., None]) -> None:
    """One demo corp (it takes a while to build) for the console at a desktop size and the sidebar at a
    phone size."""
    base = live_server.url
    # ---- a manager finds a customer by part of the name, filters by tag and channel, opens and exports
    sign_in_browser("chenjing", "manager")
    team = {"chenjing", "yangmin", "huangqiang", "zhaolei", "guoxia", "gaogang"}  # department 3 of the seed
    name, ext, tag_id, state = _manager_customer(db_session, team)
    look("console-customers", base + "/console/customers")
    page.fill("input[name=q]", name[1:])
    page.click("#apply-filters")
    page.locator("#filter-tag summary").click()
    page.locator(f"#filter-tag input[value='{tag_id}']").check()
    page.locator("#filter-state summary").click()
    page.locator(f"#filter-state input[value='{state}']").check()
    page.click("#apply-filters")
    row = page.locator(f"tr[data-external-userid='{ext}']")
    row.wait_for()
    assert page.locator("#customers tbody tr").count() <= 5
    look("console-customers-filtered")
    listed = int(page.locator("#customer-count").inner_text().replace(",", ""))
    row.locator("a.who-cell").click()
    page.wait_for_url(f"**/console/customers/{ext}")
    assert page.locator("#customer-name").inner_text() == name
    assert page.locator("#relations tbody tr").count() >= 1
    look("console-customer")
    page.click("a.back")
    page.wait_for_url("**/console/customers?**")  # back to the list as it was filtered
    page.click("#export")
    page.wait_for_selector("#export-ready:not([hidden])", timeout=20000)
    assert "100%" in page.locator("#export-figure").inner_text()
    look("console-export")
    with page.expect_download() as info:
        page.click("#export-download")
    with open(info.value.path(), encoding="utf-8-sig") as download:
        text = download.read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "客户名称" and len(rows) == listed + 1 and name in [r[0] for r in rows[1:]]

    # ---- the overview: every chart has data; filters by department and channel
    sign_in_browser("zhangwei", "admin")
    look("console-overview", base + "/console/")
    sums = _charts_have_data(page)
    assert {"chart-growth", "chart-staff", "chart-notes", "chart-funnel"} <= set(sums)
    assert len([k for k in sums if k.startswith("chart-tags-")]) >= 4
    assert all(v > 0 for v in sums.values()), sums
    assert page.locator("#fig-lost").inner_text() == str(len(demo_corp.lost))
    page.select_option("#department", "3")
    page.click("#overview-filters button[type=submit]")
    page.wait_for_url("**department=3**")
    assert page.locator("#staff-table tbody tr").count() == len(team)
    look("console-overview-department")

    # ---- every other console page, as an admin
    for name_, path in (("console-segments", "/console/segments"), ("console-segment-builder", "/console/segments/new"),
                        ("console-tags", "/console/tags/"), ("console-tags-drift", "/console/tags/drift"),
                        ("console-stages", "/console/stages"), ("console-roles", "/console/roles")):
        look(name_, base + path)
    # the bulk page, its job page
    look("console-tags-bulk", base + "/console/tags/bulk?" + f"tag={tag_id}")
    page.locator("#bulk-form .picker-col.add input[type=checkbox]").first.check()
    assert "将为" in page.locator("#bulk-summary").inner_text()
    look("console-tags-bulk-picked")
    # the rule editor: a rule made of fields, listed in words, tried out
    look("console-rules", base + "/console/rules/")
    page.fill("#rule-form input[name=name]", "展会客户打标签")
    page.select_option("#trigger", "customer_added")
    page.select_option("#rule-form select[name=param_state]", state)
    page.locator("#rule-form .picker-col.add input[type=checkbox]").nth(1).check()
    page.click("#save-rule")
    page.wait_for_selector("#rules .rule-sentence")
    sentence = page.locator("#rules .rule-sentence").first.inner_text()
    # a State nobody named yet reads as such (named ones read by their name)
    assert sentence.startswith(f"客户从「未命名渠道（{state}）」渠道添加时") and "→ 打标签" in sentence
    look("console-rules-saved")
    page.locator("#rules form[action$='/dry-run'] button").first.click()
    page.wait_for_selector("#would-change")
    look("console-rule-dry-run")

    # ---- errors: a missing page, a page the role may not see, signed out
    look("console-404", base + "/console/nowhere", allow=("404",))
    assert "页面不存在" in page.locator("h1").inner_text()
    sign_in_browser("yangmin", "staff")
    look("console-403", base + "/console/roles", allow=("403",))
    assert "无权访问" in page.locator("h1").inner_text()
    look("console-overview-staff", base + "/console/")
    page.context.clear_cookies()
    look("console-login", base + "/console/login")
    sidebar_views(page, live_server, db_session, sign_in_browser, look)


def test_a_broken_avatar_becomes_the_placeholder(page: Any, live_server: Any, db_session: Any,
                                                 demo_mode: None, sign_in_browser: Any, page_errors: list[str]) -> None:
    from crm.models import Customer, FollowRelation, Staff

    db_session.add(Staff(corp_id=TEST_CORP_ID, userid="boss", name="老板"))
    customer = Customer(corp_id=TEST_CORP_ID, external_userid="wm-face", name="林黛玉",
                        avatar="https://wx.qlogo.cn/mmhead/gone/0")
    db_session.add(customer)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid="boss"))
    db_session.commit()
    page.route("**/wx.qlogo.cn/**", lambda route: route.fulfill(status=404, body=b""))
    sign_in_browser("boss", "admin")
    for url in ("/console/customers", "/console/customers/wm-face", "/sidebar/customer/wm-face"):
        page.goto(live_server.url + url)
        placeholder = page.locator(".avatar-empty", has_text="林").first
        placeholder.wait_for()
        assert page.locator("img.avatar").count() == 0, url
    assert all("wx.qlogo.cn" in e or "404" in e for e in page_errors), page_errors


def _sidebar_customer(db_session: Any, userid: str) -> str:
    """One of the staff member's customers with orders and page views."""
    from crm.models import Customer, FollowRelation
    from tagging.lifecycle.models import BehaviorEvent

    kinds = (select(BehaviorEvent.customer_id).where(BehaviorEvent.type.in_(("order", "page_view")))
             .group_by(BehaviorEvent.customer_id).having(func.count(func.distinct(BehaviorEvent.type)) == 2))
    return str(db_session.scalar(
        select(Customer.external_userid).join(FollowRelation)
        .where(FollowRelation.userid == userid, FollowRelation.status == "active", Customer.id.in_(kinds))
        .order_by(Customer.external_userid).limit(1)))


def sidebar_views(page: Any, live_server: Any, db_session: Any, sign_in_browser: Any,
                  look: Callable[..., None]) -> None:
    """Every sidebar view at a phone size: the 360° customer (tier, summary, merged timeline, older
    pages, a new note), a group chat, a customer not one's own, the entry page without a chat."""
    from crm.models import GroupChat, GroupChatMember
    from tests.browser.test_sidebar_browser import _install_double

    base = live_server.url
    sign_in_browser("zhangwei", "staff")
    ext = _sidebar_customer(db_session, "zhangwei")
    look("sidebar-customer", base + f"/sidebar/customer/{ext}", size=PHONE)
    assert page.locator("#tier").is_visible()
    summary = page.locator("#summary .summary__text").inner_text()
    assert summary.startswith("近30天：")
    kinds = page.locator("#timeline .timeline__item").evaluate_all("items => items.map(i => i.className)")
    assert any("--order" in k for k in kinds) and any("--page_view" in k for k in kinds)
    shown = page.locator("#timeline .timeline__meta span:nth-child(2)").all_inner_texts()
    assert shown == sorted(shown, reverse=True)  # newest first
    if page.locator("#timeline-more").is_visible():
        before = page.locator("#timeline .timeline__item").count()
        page.click("#timeline-more")
        page.wait_for_function(f"() => document.querySelectorAll('#timeline .timeline__item').length > {before}")
        look("sidebar-customer-older", size=PHONE)
    # a follow-up joins the timeline at the top
    page.fill("#followup-content", "电话回访，客户对专业版满意")
    page.click("#followup-submit")
    page.locator("#timeline .timeline__item--followup", has_text="电话回访").first.wait_for()
    look("sidebar-customer-followup", size=PHONE)
    chat = db_session.scalar(select(GroupChat.chat_id).join(GroupChatMember)
                             .where(GroupChatMember.member_id == "zhangwei").order_by(GroupChat.id).limit(1))
    look("sidebar-chat", base + f"/sidebar/chat/{chat}", size=PHONE)
    look("sidebar-not-found", base + "/sidebar/customer/wm-not-a-customer", size=PHONE, allow=("404",))
    assert "找不到该客户" in page.content()
    _install_double(page, "normal")
    look("sidebar-entry-no-chat", base + "/sidebar/", size=PHONE)
    page.wait_for_selector("#status-title:has-text('没有正在进行的客户聊天')")
    look("sidebar-entry-no-chat", size=PHONE)
