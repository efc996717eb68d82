"""The campaigns API: compose (and refuse bad input in plain words, naming the field), preview, read,
recipients a page at a time, export, cancel, remind, uploads, settings, and who may do what."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from campaigns.following import follow_due
from campaigns.sending import dispatch_due
from core.db import utcnow
from crm.models import Staff
from tests.campaigns.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import token
from wecom.client import contact_client

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture()
def marketer(db_session: Any) -> dict[str, str]:
    return token(db_session, "marketer", "xiaomei", name="marketer")


def _body(corp: Corp, **extra: Any) -> dict[str, Any]:
    return {"name": "周末活动", "filter": {"tag": corp.tags["VIP"]}, "text": "周末到店有礼", **extra}


def _error(answer: Any, status: int, field: str | None = None) -> str:
    assert answer.status_code == status, answer.get_data(as_text=True)[:400]
    error = answer.get_json()["error"]
    if field is not None:
        assert any(k == field or k.startswith(field) for k in error["fields"]), error
    return str(error["message"])


@pytest.mark.parametrize("change, field, words", [
    ({"filter": None}, "filter", "请选择客户分群"),
    ({"segment_id": 99}, "segment_id", "二者选一"),
    ({"text": "", "attachments": []}, "text", "消息内容"),
    ({"text": "字" * 1400}, "text", "太长"),
    ({"attachments": [{"msgtype": "link", "link": {"title": "x", "url": "ftp://a"}}]}, "attachments", "网址"),
    ({"attachments": [{"msgtype": "image", "image": {"upload_id": 12345}}]}, "attachments", "请先上传图片"),
    ({"attachments": [{"msgtype": "voice", "voice": {}}]}, "attachments", "类型"),
    ({"attachments": [{"msgtype": "link", "link": {"title": "t", "url": "https://a.cn"}}] * 10}, "attachments", ""),
    ({"send_at": "2020-01-01T00:00:00+08:00"}, "send_at", "已经过去"),
    ({"chat_type": "group"}, "owners", "请选择群主"),
    ({"sender_rule": "preferred"}, "preferred_userids", "优先发送"),
    ({"preferred_userids": ["nobody"]}, "preferred_userids", "nobody"),
    ({"tag_id": "etnope"}, None, "标签不存在"),
    ({"filter": {"tag": "etnope"}}, "filter", "标签不存在"),
    ({"name": ""}, "name", ""),
    ({"unknown": 1}, "unknown", ""),
])
def test_bad_input_is_refused_naming_the_field(client: Any, small: Corp, marketer: dict[str, str],
                                               change: dict[str, Any], field: str | None, words: str) -> None:
    body = {k: v for k, v in {**_body(small), **change}.items() if v is not None or k != "filter"}
    if "segment_id" in change:
        body["filter"] = {"tag": small.tags["VIP"]}
    answer = client.post("/api/v1/campaigns", json=body, headers=marketer)
    message = _error(answer, 400 if "filter" in change and change["filter"] else 422, field)
    assert words in message
    assert client.get("/api/v1/campaigns", headers=marketer).get_json()["campaigns"] == []  # nothing saved


def test_compose_read_page_export_cancel(app: Any, client: Any, db_session: Any, small: Corp,
                                         marketer: dict[str, str]) -> None:
    preview = client.post("/api/v1/campaigns/preview", json={"filter": {"tag": small.tags["VIP"]}}, headers=marketer)
    assert preview.status_code == 200
    body = preview.get_json()
    assert (body["count"], body["senders"], body["calls"], body["excluded"]) == (
        5, 3, 3, {"lost": 0, "quota": 0, "no_sender": 0})
    assert body["quota"] == {"count": 1, "period": "day"} and len(body["sample"]) == 5
    assert {s["name"] for s in body["per_sender"]} == {"张三", "李四", "王五"}

    created = client.post("/api/v1/campaigns", json=_body(small), headers=marketer)
    assert created.status_code == 201
    campaign = created.get_json()
    assert campaign["status"] == "scheduled" and campaign["status_label"] == "待发送"
    dispatch_due(TEST_CORP_ID, utcnow(), contact_client())
    send_all(app)
    small.emu.act.staff_sends_groupmsg(
        next(t.msgid for t in small.emu.state.msg_templates.values() if "lisi" in t.tasks), "lisi")
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)

    detail = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=marketer).get_json()
    assert detail["status"] == "following" and detail["delivered"] == 1 and detail["sent"] == 5
    assert {t["sender_name"]: t["status"] for t in detail["tasks"]} == {"张三": "created", "李四": "sent",
                                                                       "王五": "created"}
    listed = client.get("/api/v1/campaigns?status=following", headers=marketer).get_json()["campaigns"]
    assert [c["id"] for c in listed] == [campaign["id"]]

    first = client.get(f"/api/v1/campaigns/{campaign['id']}/recipients?limit=2", headers=marketer).get_json()
    assert "next_after" in first, first
    second = client.get(f"/api/v1/campaigns/{campaign['id']}/recipients?limit=3&after={first['next_after']}",
                        headers=marketer).get_json()
    assert len(first["recipients"]) == 2 and len(second["recipients"]) == 3 and second["next_after"] is None
    names = [r["name"] for r in first["recipients"] + second["recipients"]]
    assert names == ["客户0", "客户1", "客户2", "客户3", "客户4"]
    delivered = client.get(f"/api/v1/campaigns/{campaign['id']}/recipients?status=delivered",
                           headers=marketer).get_json()["recipients"]
    assert [(r["name"], r["sender_name"], r["status_label"]) for r in delivered] == [("客户2", "李四", "已送达")]

    exported = client.get(f"/api/v1/campaigns/{campaign['id']}/results.csv", headers=marketer)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "客户/客户群" and len(rows) == 6
    assert ["客户2", small.ext(2), "李四", "lisi", "已送达"] == rows[3][:5] and rows[3][6]

    reminded = client.post(f"/api/v1/campaigns/{campaign['id']}/remind", json={}, headers=marketer)
    assert reminded.status_code == 202 and reminded.get_json()["tasks"] == 2
    cancelled = client.post(f"/api/v1/campaigns/{campaign['id']}/cancel", json={}, headers=marketer)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    again = client.post(f"/api/v1/campaigns/{campaign['id']}/cancel", json={}, headers=marketer)
    assert "已结束" in _error(again, 409)
    refused = client.post(f"/api/v1/campaigns/{campaign['id']}/remind", json={}, headers=marketer)
    assert "发送中" in _error(refused, 409)
    assert client.get("/api/v1/campaigns/999999", headers=marketer).status_code == 404


def test_uploads_and_attachments(client: Any, small: Corp, marketer: dict[str, str]) -> None:
    uploaded = client.post("/api/v1/campaigns/uploads?kind=image", headers=marketer,
                           data={"media": (io.BytesIO(PNG), "海报.png", "image/png")},
                           content_type="multipart/form-data")
    assert uploaded.status_code == 201, uploaded.get_json()
    image = uploaded.get_json()
    assert image["kind"] == "image" and image["size"] == len(PNG)
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (300 << 10)  # larger than the app's usual request limit
    assert client.post("/api/v1/campaigns/uploads?kind=image", headers=marketer, content_type="multipart/form-data",
                       data={"media": (io.BytesIO(big), "大图.png", "image/png")}).status_code == 201
    fake = client.post("/api/v1/campaigns/uploads?kind=image", headers=marketer, content_type="multipart/form-data",
                       data={"media": (io.BytesIO(b"not a picture at all"), "x.png", "image/png")})
    assert "不是有效的图片" in _error(fake, 422, "media")
    wrong = client.post("/api/v1/campaigns/uploads?kind=image", headers=marketer, content_type="multipart/form-data",
                        data={"media": (io.BytesIO(b"GIF89a......"), "x.gif", "image/gif")})
    assert "JPG" in _error(wrong, 422, "media")
    body = _body(small, attachments=[{"msgtype": "image", "image": {"upload_id": image["id"]}},
                                     {"msgtype": "miniprogram", "miniprogram": {
                                         "title": "商城", "appid": "wx1234567890abcdef", "page": "pages/index",
                                         "pic_upload_id": image["id"]}}])
    created = client.post("/api/v1/campaigns", json=body, headers=marketer)
    assert created.status_code == 201
    assert [a["msgtype"] for a in created.get_json()["attachments"]] == ["image", "miniprogram"]


def test_settings_roles_and_scopes(client: Any, db_session: Any, small: Corp, marketer: dict[str, str]) -> None:
    assert client.get("/api/v1/campaigns/settings", headers=marketer).get_json()["quota_count"] == 1
    saved = client.put("/api/v1/campaigns/settings", headers=marketer,
                       json={"quota_count": 4, "quota_period": "month", "follow_days": 7})
    assert saved.status_code == 200 and saved.get_json()["quota_period"] == "month"
    assert client.put("/api/v1/campaigns/settings", headers=marketer,
                      json={"quota_count": 0, "quota_period": "month", "follow_days": 7}).status_code == 422
    staff = token(db_session, "staff", "zhangsan", name="staff")
    assert client.get("/api/v1/campaigns", headers=staff).status_code == 403
    assert client.post("/api/v1/campaigns", json=_body(small), headers=staff).status_code == 403
    db_session.add(Staff(corp_id=TEST_CORP_ID, userid="laowang", name="老王", department_ids=[1]))
    db_session.commit()
    manager = token(db_session, "manager", "laowang", name="manager")
    assert client.get("/api/v1/campaigns/settings", headers=manager).status_code == 403
    mine = client.post("/api/v1/campaigns", json=_body(small, name="团队群发"), headers=manager)
    assert mine.status_code == 201
    theirs = client.post("/api/v1/campaigns", json=_body(small), headers=marketer).get_json()
    assert [c["name"] for c in client.get("/api/v1/campaigns", headers=manager).get_json()["campaigns"]] == ["团队群发"]
    assert client.get(f"/api/v1/campaigns/{theirs['id']}", headers=manager).status_code == 404
    assert len(client.get("/api/v1/campaigns", headers=marketer).get_json()["campaigns"]) == 2
    outside = client.post("/api/v1/campaigns", headers=manager,
                          json={"name": "群", "chat_type": "group", "owners": ["nobody"], "text": "x"})
    assert "无权查看" in _error(outside, 422, "owners")
    future = (utcnow() + dt.timedelta(days=2)).isoformat()
    assert client.post("/api/v1/campaigns", json=_body(small, send_at=future),
                       headers=marketer).get_json()["send_at"] == future
