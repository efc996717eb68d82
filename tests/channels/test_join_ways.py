"""Group-chat join ways (「加入群聊」) as channels, end to end against the emulator: created, changed and
deleted through the outbox (add/update/del_join_way), a customer who scans the code joins a chat with
the channel's State (groupchat/get), gets the channel's tags through the rule, and is counted under the
channel in the report; bad input is refused naming the field; a lost answer and an unread QR code heal."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from sqlalchemy import select

from channels import ways
from channels.models import Channel
from core.db import db
from crm.models import GroupChatMember, Staff
from tests.campaigns.conftest import due_now
from tests.channels.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client
from wecom.crypto import parse_xml
from wecom.emulator.callbacks import event_xml
from wecom.service import store_event

ADD = "/cgi-bin/externalcontact/groupchat/add_join_way"
GET = "/cgi-bin/externalcontact/groupchat/get_join_way"
CHAT = "change_external_chat"


def _chat_event(change: str, chat_id: str, *extra: tuple[str, Any]) -> None:
    plaintext = event_xml(TEST_CORP_ID, int(time.time()), CHAT, change, [("ChatId", chat_id), *extra])
    store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext))


def _group(app: Any, emu: Any, owner: str, name: str) -> str:
    """A customer group chat made in WeCom and known here through its callback."""
    chat_id = str(emu.act.group_chat_created(owner, [], name))
    _chat_event("create", chat_id)
    send_all(app)
    return chat_id


def _join(app: Any, emu: Any, config_id: str, ext: str) -> str:
    """The customer scans the join way's code: they join a chat (the emulator's action), and the callback
    is stored as /wecom/callback would store it."""
    chat_id = str(emu.act.customer_joined_via_join_way(config_id, ext))
    _chat_event("update", chat_id, ("UpdateDetail", "add_member"), ("JoinScene", 3), ("MemChangeCnt", 1),
                ("MemChangeList", [ext]))
    send_all(app)
    return chat_id


def _create(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/channels", json={"name": "展会入群", "kind": "join", **body}, headers=headers)


def test_a_join_way_brings_customers_into_the_chat_tags_them_and_counts_them(
        app: Any, client: Any, db_session: Any, emu: Any, corp: Corp, marketer: dict[str, str]) -> None:
    chat_a = _group(app, emu, "zhangsan", "展会客户1群")
    chat_b = _group(app, emu, "lisi", "展会客户2群")
    answer = _create(client, marketer, chat_ids=[chat_a], tag_ids=[corp.tags["展会客户"]], cost=300,
                     auto_create_room=True, room_base_name="展会客户群")
    assert answer.status_code == 201, answer.get_data(as_text=True)
    created = answer.get_json()
    assert created["kind"] == "join" and created["status"] == "pending" and created["users"] == ["zhangsan"]
    send_all(app)

    (way,) = emu.state.join_ways.values()
    assert way["state"] == created["state"] and way["chat_id_list"] == [chat_a] and way["scene"] == 2
    assert way["auto_create_room"] == 1 and way["room_base_name"] == "展会客户群" and way["room_base_id"] == 1
    channel = client.get(f"/api/v1/channels/{created['id']}", headers=marketer).get_json()
    assert channel["status"] == "active" and channel["config_id"] == way["config_id"]
    assert channel["qr_code"] == way["qr_code"]  # read with get_join_way: add_join_way answers the config_id only
    with urllib.request.urlopen(channel["qr_code"]) as image:  # the emulator draws the code WeCom would serve
        assert image.headers["Content-Type"] == "image/png" and image.read(8) == b"\x89PNG\r\n\x1a\n"

    ext = corp.ext(0)  # 客户0, a customer of zhangsan's
    assert _join(app, emu, way["config_id"], ext) == chat_a
    member = db_session.scalar(select(GroupChatMember).where(GroupChatMember.member_id == ext))
    assert member.state == created["state"] and member.join_scene == 3
    assert corp.tags["展会客户"] in emu.state.relation("zhangsan", ext).tags  # the channel's arrival tag

    report = client.get("/api/v1/reports/channels", headers=marketer).get_json()
    row = next(r for r in report["channels"] if r["state"] == created["state"])
    assert row["kind"] == "join" and row["name"] == "展会入群" and row["added"] == 1 and row["lost"] == 0
    assert row["channel_id"] == created["id"] and row["cost"] == "300.00"

    changed = client.patch(f"/api/v1/channels/{created['id']}", json={"chat_ids": [chat_a, chat_b]}, headers=marketer)
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["users"] == ["zhangsan", "lisi"]  # the chats' owners
    send_all(app)
    assert emu.state.join_ways[way["config_id"]]["chat_id_list"] == [chat_a, chat_b]
    assert emu.state.join_ways[way["config_id"]]["state"] == created["state"]

    gone = client.delete(f"/api/v1/channels/{created['id']}", headers=marketer)
    assert gone.status_code == 200 and gone.get_json()["status"] == "retired"
    send_all(app)
    assert emu.state.join_ways == {}


def test_bad_join_input_is_refused_naming_the_field(app: Any, client: Any, emu: Any, corp: Corp,
                                                    marketer: dict[str, str]) -> None:
    chats = [_group(app, emu, "zhangsan", f"群{i}") for i in range(6)]
    cases = [({"chat_ids": []}, "chat_ids"), ({"chat_ids": chats}, "chat_ids"),
             ({"chat_ids": ["wr_nobody_knows"]}, "chat_ids"),
             ({"chat_ids": chats[:1], "welcome_text": "欢迎"}, "welcome_text"),
             ({"chat_ids": chats[:1], "users": ["zhangsan"]}, "users"),
             ({"chat_ids": chats[:1], "auto_create_room": True}, "room_base_name")]
    for body, field in cases:
        answer = _create(client, marketer, **body)
        assert answer.status_code == 422, (body, answer.get_data(as_text=True))
        error = answer.get_json()["error"]
        assert field in error["fields"], (body, error)
        assert error["message"] and "Traceback" not in answer.get_data(as_text=True)
    assert emu.state.join_ways == {}


def test_a_chat_whose_owner_left_cannot_be_chosen(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                                  marketer: dict[str, str]) -> None:
    chat_id = _group(app, emu, "lisi", "李四的群")
    db_session.execute(Staff.__table__.update().where(Staff.userid == "lisi").values(status="resigned"))
    db_session.commit()
    answer = _create(client, marketer, chat_ids=[chat_id])
    assert answer.status_code == 422 and "客户交接" in answer.get_json()["error"]["message"]


def test_a_lost_answer_is_sent_again_and_an_unread_qr_code_is_read_later(
        app: Any, client: Any, db_session: Any, emu: Any, corp: Corp, marketer: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    chat_id = _group(app, emu, "zhangsan", "官网客户群")
    created = _create(client, marketer, chat_ids=[chat_id]).get_json()
    emu.faults.add(path=ADD, http_status=502, times=1)  # WeCom never got it
    emu.faults.add(path=GET, errcode=40058, times=1)  # and then its QR code cannot be read
    send_all(app, retry_base=60)
    due_now(db_session)
    send_all(app)
    assert len(emu.state.join_ways) == 1
    db_session.expire_all()
    channel = db_session.get(Channel, created["id"])
    assert channel.status == "active" and channel.config_id and channel.qr_code is None

    emu.faults.clear()
    with app.app_context():
        assert ways.refresh_qr_codes(TEST_CORP_ID, contact_client) == 1
        db.session.commit()
    db_session.expire_all()
    assert db_session.get(Channel, created["id"]).qr_code == next(iter(emu.state.join_ways.values()))["qr_code"]


def test_a_join_rule_reads_with_the_channel_name(app: Any, client: Any, emu: Any, corp: Corp,
                                                 marketer: dict[str, str]) -> None:
    chat_id = _group(app, emu, "zhangsan", "门店客户群")
    created = _create(client, marketer, chat_ids=[chat_id], tag_ids=[corp.tags["高意向"]]).get_json()
    rules = client.get("/api/v1/rules", headers=marketer).get_json()
    rule = next(r for r in rules["rules"] if r["id"] == created["rule_id"])
    assert rule["trigger"] == "joined_group_chat" and rule["trigger_params"] == {"state": created["state"]}


def test_a_marketer_makes_a_join_way_in_the_console(app: Any, client: Any, db_session: Any, emu: Any,
                                                    corp: Corp) -> None:
    from identity.service import set_role
    from tests.helpers import sign_in

    chat_id = _group(app, emu, "zhangsan", "展会客户1群")
    set_role(TEST_CORP_ID, "xiaomei", "marketer", "test")
    db_session.commit()
    sign_in(client, "xiaomei", csrf="t")
    form = client.get("/console/channels/new?kind=join")
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and "展会客户1群" in html and "群主 张三 · 1 人" in html and "接待成员" not in html
    bad = client.post("/console/channels/new", data={"csrf_token": "t", "kind": "join", "name": "展会入群"})
    assert bad.status_code == 422 and "请选择客户群" in bad.get_data(as_text=True)
    made = client.post("/console/channels/new", data={"csrf_token": "t", "kind": "join", "name": "展会入群",
                                                      "chat_ids": [chat_id], "tag_ids": [corp.tags["高意向"]]})
    assert made.status_code == 302, made.get_data(as_text=True)[:500]
    send_all(app)
    detail = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "加入群聊" in detail and "下载二维码" in detail and "使用中" in detail
    saved = client.post(made.headers["Location"], data={"csrf_token": "t", "name": "展会入群（二期）",
                                                        "chat_ids": [chat_id], "auto_create_room": "1",
                                                        "room_base_name": "展会二期群", "room_base_id": "3"})
    assert saved.status_code == 302
    send_all(app)
    (way,) = emu.state.join_ways.values()
    assert way["remark"] == "展会入群（二期）" and way["room_base_name"] == "展会二期群" and way["room_base_id"] == 3
    listing = client.get("/console/channels/").get_data(as_text=True)
    assert "展会入群（二期）" in listing and "1 个群" in listing
    rules = client.get("/console/rules/").get_data(as_text=True)
    assert "客户通过「展会入群（二期）」加入客户群时" in rules
