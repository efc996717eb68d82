"""A marketer composes a campaign in Chromium: picks a tag, sees the live count and who is excluded and why,
adds a link and an image (previewed as the WeCom client shows them), schedules it; once it has been sent
and the senders confirmed, the detail page draws the delivery charts. Screenshots of every page are saved
under tests/screenshots/."""

from __future__ import annotations

import datetime as dt
import os
import struct
import zlib
from typing import Any

import pytest
from sqlalchemy import update

from campaigns.following import follow_due
from campaigns.models import ForeignReceipt
from campaigns.sending import dispatch_due
from core.db import utcnow
from core.time import CHINA
from crm.models import Staff
from tests.campaigns.conftest import send_all, small  # noqa: F401  (fixture)
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")


def poster(width: int = 240, height: int = 160) -> bytes:
    """A small red poster with a white band, as a real PNG (so the preview shows a picture)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    for y in range(height):
        band = height // 3 < y < 2 * height // 3
        rows.append(b"\x00" + b"".join(bytes((255, 255, 255) if band and 20 < x < width - 20 else
                                             (230 - y // 2, 40 + x // 8, 50)) for x in range(width)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def _shot(page: Any, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def _text(page: Any, selector: str, expected: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).textContent.trim() === t", arg=[selector, expected])


@pytest.mark.browser
def test_compose_schedule_and_see_the_delivery_chart(app: Any, page: Any, live_server: Any, db_session: Any,
                                                     small: Any, sign_in_browser: Any, page_errors: list[str],
                                                     tmp_path: Any) -> None:
    # 客户3's only follower left; 客户0 already received a member's mass message today, and again on the
    # (China) day of the send, which is the next day when this runs after 22:00 in China
    when = (utcnow() + dt.timedelta(hours=2)).astimezone(CHINA).replace(second=0, microsecond=0)
    db_session.execute(update(Staff).where(Staff.userid == "wangwu").values(status="resigned"))
    for msgid, sent_at in (("msgown", utcnow()), ("msgown2", when - dt.timedelta(minutes=1))):
        db_session.add(ForeignReceipt(corp_id=TEST_CORP_ID, msgid=msgid, chat_type="single", target=small.ext(0),
                                      target_pk=small.ids[small.ext(0)], sent_at=sent_at))
    db_session.commit()
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_in_browser("xiaomei", "marketer")
    page.goto(live_server.url + "/console/campaigns")
    _shot(page, "campaigns-list-empty.png")
    page.get_by_role("link", name="新建群发").click()
    page.wait_for_url("**/console/campaigns/new")

    page.fill("input[name=name]", "双十二会员日")
    page.get_by_label("VIP").first.check()
    _text(page, "#reach-count", "3")  # 5 VIP customers: one over today's quota, one without an active follower
    _text(page, "#excluded-quota", "1")
    _text(page, "#excluded-no_sender", "1")
    _text(page, "#excluded-lost", "0")
    assert "2 位成员发送" in page.inner_text("#reach-senders")
    page.fill("#text-field", "双十二会员日全场八折，到店再送精美礼品一份。")
    page.get_by_role("button", name="＋ 链接").click()
    page.get_by_label("标题").fill("活动详情")
    page.get_by_label("链接地址").fill("https://example.com/1212")
    page.get_by_label("描述").fill("全场八折，会员再享积分翻倍")
    page.get_by_role("button", name="＋ 图片").click()
    picture = tmp_path / "海报.png"
    picture.write_bytes(poster())
    page.get_by_label("选择图片").set_input_files(str(picture))
    page.wait_for_selector("#bubble-preview img.wx-image")
    assert "活动详情" in page.inner_text("#bubble-preview")
    page.get_by_label("定时发送").check()
    page.fill("input[name=send_at]", when.strftime("%Y-%m-%dT%H:%M"))
    _shot(page, "campaigns-compose.png")
    page.get_by_role("button", name="创建群发").click()
    page.wait_for_url("**/console/campaigns/*")
    assert "将于 " + when.strftime("%Y-%m-%d %H:%M") + " 发送" in page.inner_text("main")
    assert "届时重新计算受众" in page.inner_text("#progress-text")
    assert page.locator(".estimate .figure .n").all_inner_texts() == ["3", "2", "2"]  # reach, excluded, senders
    _shot(page, "campaigns-detail-scheduled.png")

    # at its time the send job plans and sends it; the senders confirm in WeCom; the follow job reads results
    emu = small.emu
    emu.clock.advance((when - utcnow()).total_seconds())  # WeCom's clock at the send time too
    dispatch_due(TEST_CORP_ID, when.astimezone(dt.timezone.utc), contact_client())
    send_all(app)
    msgids = {u: tpl.msgid for tpl in emu.state.msg_templates.values() for u in tpl.tasks}
    emu.clock.advance(3600)
    emu.act.staff_sends_groupmsg(msgids["zhangsan"], "zhangsan")  # an hour after the send
    emu.clock.advance(2 * 3600)
    emu.act.customer_deletes_staff("lisi", small.ext(2))
    emu.act.staff_sends_groupmsg(msgids["lisi"], "lisi")  # three hours after
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    page.reload()
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-timeline')")
    assert page.evaluate("() => Chart.getChart('chart-timeline').data.datasets[1].data.slice(-1)[0]") == 2
    senders = page.evaluate("() => Chart.getChart('chart-senders').data.labels")
    assert sorted(senders) == ["张三", "李四"]
    assert "已完成" in page.inner_text("h1") and "非好友 1" in page.inner_text(".figures")
    _shot(page, "campaigns-detail-delivered.png")
    page.goto(live_server.url + "/console/campaigns")
    assert "66.7%" in page.inner_text("table")
    _shot(page, "campaigns-list.png")
    page.goto(live_server.url + "/console/campaigns/settings")
    _shot(page, "campaigns-settings.png")
    assert not page_errors, page_errors
