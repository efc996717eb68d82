"""§2/§3 callbacks: envelope, signature, decryption, order, retries with the same payload, and no
callback for API-initiated changes."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import xmltodict

from tests.emulator.conftest import AGENT_ID, CORP_ID, Api, Receiver, make_emulator
from wecom.emulator import Emulator


def _parse(xml: str) -> dict[str, Any]:
    return xmltodict.parse(xml, disable_entities=True)["xml"]


def test_envelope_and_payload(emulator: Emulator, receiver: Receiver) -> None:
    emulator.act.add_staff("alice", "张三")
    ext = emulator.act.customer_adds_staff("alice", name="客户", state="expo2024")
    assert emulator.wait_idle()
    (req,) = receiver.requests
    assert set(req["args"]) == {"msg_signature", "timestamp", "nonce"}
    envelope = _parse(req["body"])
    assert envelope["ToUserName"] == CORP_ID and envelope["AgentID"] == AGENT_ID and envelope["Encrypt"]
    (payload,) = receiver.events()
    event = _parse(payload)
    assert event["ToUserName"] == CORP_ID and event["FromUserName"] == "sys" and event["MsgType"] == "event"
    assert event["Event"] == "change_external_contact" and event["ChangeType"] == "add_external_contact"
    assert event["UserID"] == "alice" and event["ExternalUserID"] == ext and event["State"] == "expo2024"
    assert event["WelcomeCode"] and int(event["CreateTime"]) == int(req["args"]["timestamp"])
    assert emulator.deliveries[0] == (payload, 1, 200)


def test_contact_events_in_order(emulator: Emulator, receiver: Receiver) -> None:
    act = emulator.act
    act.add_staff("alice", "张三")
    _, (tag,) = act.corp_tag_group_created("等级", ["A类"])
    ext = act.customer_adds_staff("alice", half=True)
    act.staff_confirms_half("alice", ext)
    act.staff_edits_tags("alice", ext, add=[tag])
    act.staff_edits_remark("alice", ext, remark="王总")
    act.customer_deletes_staff("alice", ext)
    act.staff_deletes_customer("alice", ext)
    assert emulator.wait_idle()
    kinds = [(_parse(e)["Event"], _parse(e)["ChangeType"]) for e in receiver.events()]
    assert kinds == [("change_external_tag", "create"), ("change_external_tag", "create"),
                     ("change_external_contact", "add_half_external_contact"),
                     ("change_external_contact", "add_external_contact"),
                     ("change_external_contact", "edit_external_contact"),
                     ("change_external_contact", "edit_external_contact"),
                     ("change_external_contact", "del_follow_user"),
                     ("change_external_contact", "del_external_contact")]
    assert emulator.state.relation_tags("alice", ext) == set()


def test_tag_events(emulator: Emulator, receiver: Receiver) -> None:
    act = emulator.act
    gid, (t1, t2) = act.corp_tag_group_created("行业", ["教育", "医疗"])
    t3 = act.corp_tag_created(gid, "制造")
    act.corp_tag_renamed(t3, "智能制造")
    act.corp_tag_renamed(gid, "所属行业")
    act.corp_tags_reordered(gid)
    act.corp_tags_reordered()
    act.corp_tag_deleted(t1)
    act.corp_tag_deleted(gid)
    assert emulator.wait_idle()
    events = [_parse(e) for e in receiver.events()]
    got = [(e["ChangeType"], e.get("Id"), e.get("TagType")) for e in events]
    assert got == [("create", gid, "tag_group"), ("create", t1, "tag"), ("create", t2, "tag"), ("create", t3, "tag"),
                   ("update", t3, "tag"), ("update", gid, "tag_group"), ("shuffle", gid, None), ("shuffle", None, None),
                   ("delete", t1, "tag"), ("delete", gid, "tag_group")]
    assert all(e["Event"] == "change_external_tag" for e in events)


def test_api_mutations_send_no_callback(emulator: Emulator, receiver: Receiver) -> None:
    emulator.act.add_staff("alice", "张三")
    ext = emulator.act.customer_adds_staff("alice", welcome_code=False)
    assert emulator.wait_idle()
    api = Api(emulator)
    tag_group = api.ok("externalcontact/add_corp_tag", {"group_name": "等级", "tag": [{"name": "A"}]})["tag_group"]
    tag = tag_group["tag"][0]["id"]
    api.ok("externalcontact/edit_corp_tag", {"id": tag, "name": "A类"})
    api.ok("externalcontact/mark_tag", {"userid": "alice", "external_userid": ext, "add_tag": [tag]})
    api.ok("externalcontact/remark", {"userid": "alice", "external_userid": ext, "remark": "王总"})
    api.ok("externalcontact/del_corp_tag", {"tag_id": [tag]})
    assert emulator.wait_idle()
    assert len(receiver.requests) == 1 and len(emulator.deliveries) == 1


@pytest.fixture()
def slow_emulator() -> Iterator[Emulator]:
    emu = make_emulator(None, callback_timeout=0.3, callback_backoff=(0.0, 0.0, 0.0))
    yield emu
    emu.stop()


def test_retries_same_payload_on_non_200(emulator: Emulator, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    emulator.act.add_staff("alice", "张三")
    emulator.act.customer_adds_staff("alice")
    assert emulator.wait_idle()
    assert len(receiver.requests) == 3
    assert len({r["body"] for r in receiver.requests}) == 1
    assert len({tuple(sorted(r["args"].items())) for r in receiver.requests}) == 1
    assert emulator.deliveries[0].attempts == 3 and emulator.deliveries[0].final_status == 200


def test_gives_up_after_three_retries(emulator: Emulator, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    emulator.act.add_staff("alice", "张三")
    emulator.act.customer_adds_staff("alice")
    emulator.act.customer_adds_staff("alice")
    assert emulator.wait_idle()
    assert len(receiver.requests) == 8  # 1 + 3 retries, for each of the two events, in order
    first, second = emulator.deliveries
    assert first.attempts == 4 and first.final_status == 500 and second.final_status == 500
    assert receiver.requests[3]["body"] == receiver.requests[0]["body"] != receiver.requests[4]["body"]


def test_retries_when_the_answer_is_too_slow(slow_emulator: Emulator) -> None:
    receiver = Receiver()
    try:
        slow_emulator.callback_url = receiver.url
        receiver.delays = [0.6]
        slow_emulator.act.add_staff("alice", "张三")
        slow_emulator.act.customer_adds_staff("alice")
        assert slow_emulator.wait_idle()
        assert len(receiver.requests) == 2 and receiver.requests[0]["body"] == receiver.requests[1]["body"]
        assert slow_emulator.deliveries[0].attempts == 2 and slow_emulator.deliveries[0].final_status == 200
    finally:
        receiver.close()


def test_without_callback_url_events_are_recorded(emulator: Emulator) -> None:
    emulator.act.add_staff("alice", "张三")
    emulator.act.customer_adds_staff("alice")
    assert emulator.wait_idle()
    assert emulator.deliveries[0].final_status == "no-url" and "add_external_contact" in emulator.deliveries[0].payload
