"""A manager hands a departed colleague's customers over in Chromium: the waiting list, the wizard (pick,
distribute, preview with who cannot move and why, confirm), the job's progress and per-customer state; then
the takeover colleague opens the customer in the sidebar and sees the earlier follow-ups and the handover
note. Screenshots of every page are saved under tests/screenshots/."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from sqlalchemy import select

from core.db import utcnow
from crm.models import FollowUp
from handover.following import poll_due
from handover.models import HandoverCustomer
from tests.handover.conftest import corp_of, people, settle
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")
SDK_PATH = "**/sidebar/static/vendor/wecom-jssdk/wecom.global.prod.js"


def _shot(page: Any, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


@pytest.mark.browser
def test_a_manager_hands_over_and_the_takeover_sees_the_history(
        app: Any, page: Any, live_server: Any, db_session: Any, emu: Any, sign_in_browser: Any,
        page_errors: list[str]) -> None:
    emu.callback_url = live_server.url + "/wecom/callback"
    corp = corp_of(db_session, emu, people(120, "laowang", tags=["VIP"]))
    first = corp.ext(0)
    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=corp.ids[first], userid="laowang",
                            content="约了周五到店看样品", created_at=utcnow() - dt.timedelta(days=3)))
    db_session.commit()
    emu.act.group_chat_created("laowang", ["zhangsan"], "老王的VIP群")
    emu.act.staff_resigns("laowang")
    settle(app, db_session, emu)

    sign_in_browser("xiaomei", "manager")
    page.goto(live_server.url + "/console/handover")
    row = page.locator("tr", has_text="老王")
    assert "120" in row.inner_text()
    _shot(page, "handover-index.png")

    row.locator("a", has_text="分配给同事").click()
    page.wait_for_url("**/console/handover/new**")
    for name in ("张三", "李四"):
        page.locator("#takeovers-card label.chip", has_text=name).locator("input").check()
    page.click("#preview-button")
    page.wait_for_selector("#preview")
    assert page.inner_text("#preview-movable") == "120"
    takeovers = page.inner_text("#preview-takeovers")
    assert "张三" in takeovers and "李四" in takeovers and "60" in takeovers
    _shot(page, "handover-preview.png")

    page.click("#confirm-button")
    page.wait_for_url("**/console/handover/*")
    assert "进行中" in page.inner_text("#status-badge")
    settle(app, db_session, emu)
    page.reload()
    assert page.inner_text("#fig-waiting").strip() == "120"
    _shot(page, "handover-job-waiting.png")

    emu.act.customer_refuses_transfer(corp.ext(119))
    emu.clock.advance(86400 + 60)
    settle(app, db_session, emu, timeout=90)
    poll_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    settle(app, db_session, emu)
    page.reload()
    page.wait_for_selector("#failures")
    assert page.inner_text("#fig-done").strip() == "119"
    assert "客户拒绝" in page.inner_text("#failures")
    assert page.locator("#progress-bar").get_attribute("value") == "100"
    assert "已结束" in page.inner_text("#status-badge")
    _shot(page, "handover-job-done.png")

    # the takeover opens the customer in the sidebar: the earlier follow-up and the handover note
    taker = db_session.scalar(select(HandoverCustomer.takeover_userid).where(HandoverCustomer.external_userid == first))
    sign_in_browser(taker, "staff")
    page.route(SDK_PATH, lambda route: route.fulfill(status=200, content_type="text/javascript", body="window.ww={};"))
    page.goto(f"{live_server.url}/sidebar/customer/{first}")
    body = page.inner_text("body")
    assert "约了周五到店看样品" in body and "由 老王 转接给" in body, body[:2000]
    assert "已转接" in page.inner_text("#colleagues") and "已流失" not in page.inner_text("#colleagues")
    _shot(page, "handover-sidebar-note.png")
    # the emulator's avatars are plain http, which the CSP blocks outside the demo (the page shows initials)
    assert not [e for e in page_errors if "wx.qlogo.cn" not in e], page_errors
