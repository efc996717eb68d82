"""The console pages of the campaigns: who may open them, the composer's form (conditions picked, never JSON),
its live reach, uploads, the detail page's actions, the CSV export and the settings."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from campaigns.following import follow_due
from campaigns.models import Campaign, CampaignSettings
from campaigns.sending import dispatch_due
from core.db import utcnow
from crm.models import Staff
from identity.service import set_role
from tests.campaigns.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID, sign_in
from wecom.client import contact_client

PAGES = ("/console/campaigns", "/console/campaigns/new")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture()
def people(db_session: Any, small: Corp) -> dict[str, str]:
    for userid, role in (("xiaomei", "marketer"), ("laowang", "manager"), ("boss", "admin")):
        if userid != "xiaomei":
            db_session.add(Staff(corp_id=TEST_CORP_ID, userid=userid, name=userid, department_ids=[1]))
        set_role(TEST_CORP_ID, userid, role, "test")
    db_session.commit()
    return {"marketer": "xiaomei", "manager": "laowang", "admin": "boss", "staff": "zhangsan"}


def test_pages_for_marketers_managers_and_admins_only(client: Any, people: dict[str, str]) -> None:
    for role, userid in people.items():
        sign_in(client, userid)
        for path in PAGES:
            answer = client.get(path)
            if role == "staff":
                assert answer.status_code == 403, path
            else:
                assert answer.status_code == 200 and "群发" in answer.get_data(as_text=True), (role, path)
        settings = client.get("/console/campaigns/settings").status_code
        assert settings == (200 if role in ("marketer", "admin") else 403), role
    client.delete_cookie("session")
    assert client.get("/console/campaigns").status_code == 302


def _form(corp: Corp, **extra: Any) -> dict[str, Any]:
    return {"csrf_token": "t", "name": "会员日", "chat_type": "single", "audience": "filter",
            "tag": [corp.tags["VIP"]], "text": "会员日全场八折", "send_mode": "now", "attachments": "[]",
            "sender_rule": "followup", **extra}


def test_compose_from_conditions_with_live_reach_and_an_upload(client: Any, db_session: Any, small: Corp,
                                                               people: dict[str, str]) -> None:
    sign_in(client, "xiaomei")
    page = client.get("/console/campaigns/new").get_data(as_text=True)
    assert "VIP" in page and "张三" in page and "{&#34;" not in page  # tags and staff by name, no JSON shown
    reach = client.post("/console/campaigns/preview", data=_form(small), headers={"X-CSRF-Token": "t"})
    assert reach.status_code == 200 and reach.get_json()["count"] == 5
    narrowed = client.post("/console/campaigns/preview", headers={"X-CSRF-Token": "t"},
                           data=_form(small, owner=["lisi"], exclude_tag=[small.tags["普通"]]))
    assert narrowed.get_json()["count"] == 2  # 客户1 and 客户2 are followed by lisi
    bad = client.post("/console/campaigns/preview", data=_form(small, added_from="2026-13-01"),
                      headers={"X-CSRF-Token": "t"})
    assert bad.status_code == 400 and "格式不对" in bad.get_json()["error"]["message"]

    uploaded = client.post("/console/campaigns/uploads", headers={"X-CSRF-Token": "t"},
                           data={"kind": "image", "media": (io.BytesIO(PNG), "海报.png", "image/png")},
                           content_type="multipart/form-data")
    assert uploaded.status_code == 201
    image = uploaded.get_json()
    shown = client.get(image["url"])
    assert shown.status_code == 200 and shown.mimetype == "image/png" and shown.data == PNG
    refused = client.post("/console/campaigns/uploads", headers={"X-CSRF-Token": "t"},
                          data={"kind": "image", "media": (io.BytesIO(b"plain text here"), "a.txt", "text/plain")},
                          content_type="multipart/form-data")
    assert refused.status_code == 422 and "JPG" in refused.get_json()["error"]["message"]

    attachments = json.dumps([{"msgtype": "image", "image": {"upload_id": image["id"]}}])
    answer = client.post("/console/campaigns/new", data=_form(small, send_mode="later", send_at="2099-01-01T09:30",
                                                              attachments=attachments))
    assert "一年之内" in answer.get_data(as_text=True)  # kept on the page with what was typed
    assert "会员日全场八折" in answer.get_data(as_text=True)
    answer = client.post("/console/campaigns/new", data=_form(small, attachments=attachments))
    assert answer.status_code == 302
    campaign = db_session.scalar(select(Campaign))
    assert campaign.filter == {"all": [{"wecom_tags": [small.tags["VIP"]]}]}
    assert campaign.attachments == [{"msgtype": "image", "image": {"upload_id": image["id"]}}]
    detail = client.get(answer.headers["Location"])
    html = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "已创建群发「会员日」，立即发送" in html and "待发送" in html


def test_detail_actions_export_and_settings(app: Any, client: Any, db_session: Any, small: Corp,
                                            people: dict[str, str]) -> None:
    sign_in(client, "xiaomei")
    client.post("/console/campaigns/new", data=_form(small))
    campaign = db_session.scalar(select(Campaign))
    dispatch_due(TEST_CORP_ID, utcnow(), contact_client())
    send_all(app)
    small.emu.act.staff_sends_groupmsg(
        next(t.msgid for t in small.emu.state.msg_templates.values() if "lisi" in t.tasks), "lisi")
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    html = client.get(f"/console/campaigns/{campaign.id}").get_data(as_text=True)
    assert "等待成员确认" in html and "李四" in html and "chart-timeline" in html and "还可提醒 3 次" in html
    delivered = client.get(f"/console/campaigns/{campaign.id}?status=delivered").get_data(as_text=True)
    assert "客户2" in delivered and "客户0" not in delivered
    progress = client.get(f"/console/campaigns/{campaign.id}/progress").get_json()
    assert progress["status"] == "following" and progress["progress"]["percent"] == 100
    reminded = client.post(f"/console/campaigns/{campaign.id}/remind", data={"csrf_token": "t"}, follow_redirects=True)
    assert "已提醒 2 个未确认的发送任务" in reminded.get_data(as_text=True)
    exported = client.get(f"/console/campaigns/{campaign.id}/export.csv")
    assert exported.mimetype == "text/csv" and exported.get_data(as_text=True).count("\n") == 6
    cancelled = client.post(f"/console/campaigns/{campaign.id}/cancel", data={"csrf_token": "t"},
                            follow_redirects=True)
    assert "已取消群发" in cancelled.get_data(as_text=True)
    again = client.post(f"/console/campaigns/{campaign.id}/cancel", data={"csrf_token": "t"}, follow_redirects=True)
    assert "群发已结束，无法取消" in again.get_data(as_text=True)
    listed = client.get("/console/campaigns").get_data(as_text=True)
    assert "会员日" in listed and "已取消" in listed

    saved = client.post("/console/campaigns/settings", follow_redirects=True,
                        data={"csrf_token": "t", "quota_count": "4", "quota_period": "month", "follow_days": "5"})
    assert "已保存群发设置" in saved.get_data(as_text=True)
    row = db_session.scalar(select(CampaignSettings))
    assert (row.quota_count, row.quota_period, row.follow_days) == (4, "month", 5)
    wrong = client.post("/console/campaigns/settings", follow_redirects=True,
                        data={"csrf_token": "t", "quota_count": "x", "quota_period": "month", "follow_days": "5"})
    assert "接收次数应为整数" in wrong.get_data(as_text=True)
    assert client.post("/console/campaigns/settings", data={"quota_count": "1"}).status_code == 403  # no CSRF token
