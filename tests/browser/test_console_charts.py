"""The console's charts are drawn in a real browser under the pages' strict CSP."""

from __future__ import annotations

import time
from typing import Any

from tests.helpers import TEST_CORP_ID


def test_segments_page_draws_its_charts(page: Any, live_server: Any, app: Any, db_session: Any) -> None:
    from console.identity import set_role
    from crm.models import Customer, FollowRelation

    for i, stage in enumerate(["意向客户", "意向客户", "成交客户"]):
        customer = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_chart{i}", name=f"客户{i}", stage=stage)
        db_session.add(customer)
        db_session.flush()
        db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid="boss"))
    set_role(TEST_CORP_ID, "boss", "admin", granted_by="test")
    db_session.commit()
    cookie = app.session_interface.get_signing_serializer(app).dumps(
        {"uid": "boss", "corp": TEST_CORP_ID, "csrf": "t", "at": int(time.time())})
    page.context.add_cookies([{"name": app.config.get("SESSION_COOKIE_NAME", "session"), "value": cookie,
                               "url": live_server.url}])
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(live_server.url + "/console/segments")
    canvas = page.locator("#chart-stages")
    canvas.wait_for()
    # Chart.js attached a chart to the canvas and drew it with the page's data
    assert page.evaluate("() => { const c = Chart.getChart('chart-stages'); return c && c.data.datasets[0].data; }") \
        == [0, 2, 1, 0, 0, 0]
    assert canvas.bounding_box()["height"] > 100
    assert not errors, errors  # no CSP violation, no script error
