"""§5 handover: on-job and resigned transfers over the emulator clock, their codes and callbacks;
unassigned customers; group chat transfers."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import Api, Receiver
from wecom.emulator import Emulator

DAY = 86400


def _transfer(api: Api, ext_ids: list[str], handover: str = "alice", takeover: str = "carol",
              path: str = "externalcontact/transfer_customer") -> dict[str, int]:
    data = api.ok(path, {"handover_userid": handover, "takeover_userid": takeover, "external_userid": ext_ids})
    return {row["external_userid"]: row["errcode"] for row in data["customer"]}


def test_onjob_transfer_completes_after_24h(api: Api, corp: dict[str, Any], emulator: Emulator,
                                             receiver: Receiver) -> None:
    c1, c2 = corp["c1"], corp["c2"]
    emulator.act.staff_edits_tags("alice", c1, add=[corp["tags"][0]])
    emulator.wait_idle()
    before = len(receiver.events())
    assert _transfer(api, [c1, c2, "wmnobody"], takeover="bob") == {c1: 0, c2: 0, "wmnobody": 40096}
    start = emulator.clock.now()
    result = api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "bob"})
    assert {r["external_userid"]: (r["status"], r["takeover_time"]) for r in result["customer"]} == {
        c1: (2, start + DAY), c2: (2, start + DAY)}
    assert result["next_cursor"] == ""
    assert _transfer(api, [c1], takeover="bob") == {c1: 40129}
    emulator.clock.advance(DAY - 10)
    assert api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "bob"})["customer"][0]["status"] == 2
    emulator.clock.advance(20)
    result = api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "bob"})
    assert {r["status"] for r in result["customer"]} == {1}
    assert emulator.state.relation("alice", c1) is None
    assert emulator.state.relation_tags("bob", c2) == set() and "bob" in [
        r.userid for r in emulator.state.customers[c2].follows]
    assert emulator.wait_idle()
    events = receiver.events()[before:]
    # bob already followed c1: no add event for it; c2 is new to bob; alice loses both by transfer
    adds = [e for e in events if "add_external_contact" in e]
    dels = [e for e in events if "del_external_contact" in e]
    assert len(adds) == 1 and c2 in adds[0] and "<UserID><![CDATA[bob]]>" in adds[0]
    assert len(dels) == 2 and all("<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>" in e for e in dels)


def test_onjob_transfer_codes(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    c1 = corp["c1"]
    body = {"handover_userid": "alice", "takeover_userid": "alice", "external_userid": [c1]}
    assert api.code("externalcontact/transfer_customer", body) == 40130
    assert api.code("externalcontact/transfer_customer", {**body, "takeover_userid": "carol",
                                                          "external_userid": [c1] * 101}) == 40058
    assert api.code("externalcontact/transfer_customer", {**body, "takeover_userid": "carol",
                                                          "transfer_success_msg": "字" * 201}) == 40058
    assert _transfer(api, [c1], handover="carol", takeover="bob") == {c1: 40131}
    # two on-job transfers per customer in 90 days
    assert _transfer(api, [c1]) == {c1: 0}
    emulator.clock.advance(DAY)
    assert _transfer(api, [c1], handover="carol", takeover="alice") == {c1: 0}
    emulator.clock.advance(DAY)
    assert _transfer(api, [c1], handover="alice", takeover="carol") == {c1: 40128}
    emulator.clock.advance(89 * DAY)
    assert _transfer(api, [c1], handover="alice", takeover="carol") == {c1: 0}
    assert api.code("externalcontact/resigned/transfer_customer", {**body, "takeover_userid": "bob"}) == 40097


def test_refused_transfer_ends_3_with_transfer_fail(api: Api, corp: dict[str, Any], emulator: Emulator,
                                                    receiver: Receiver) -> None:
    emulator.act.customer_refuses_transfer(corp["c2"])  # before: the next transfer is refused
    assert _transfer(api, [corp["c2"]]) == {corp["c2"]: 0}
    emulator.clock.advance(DAY)
    row = api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "carol"})["customer"][0]
    assert row == {"external_userid": corp["c2"], "status": 3, "takeover_time": 0}
    assert emulator.state.relation("alice", corp["c2"]) is not None
    assert emulator.wait_idle()
    fail = [e for e in receiver.events() if "transfer_fail" in e]
    assert len(fail) == 1 and "<FailReason><![CDATA[customer_refused]]></FailReason>" in fail[0]
    assert "<UserID><![CDATA[carol]]></UserID>" in fail[0]


def test_resigned_flow(api: Api, corp: dict[str, Any], emulator: Emulator, receiver: Receiver) -> None:
    chat = emulator.act.group_chat_created("alice", ["bob", corp["c1"]], "客户群")
    emulator.act.staff_resigns("alice")
    unassigned = api.ok("externalcontact/get_unassigned_list", {"page_size": 1})
    assert unassigned["info"][0]["handover_userid"] == "alice" and unassigned["is_last"] is False
    assert set(unassigned["info"][0]) == {"handover_userid", "external_userid", "dimission_time"}
    rest = api.ok("externalcontact/get_unassigned_list", {"cursor": unassigned["next_cursor"], "page_size": 1})
    assert rest["is_last"] is True and rest["next_cursor"] == ""
    assert {unassigned["info"][0]["external_userid"], rest["info"][0]["external_userid"]} == {corp["c1"], corp["c2"]}
    legacy = api.ok("externalcontact/get_unassigned_list", {"page_id": 0, "page_size": 100})
    assert len(legacy["info"]) == 2 and "next_cursor" not in legacy
    emulator.wait_idle()
    before = len(receiver.events())
    assert _transfer(api, [corp["c2"]], path="externalcontact/resigned/transfer_customer") == {corp["c2"]: 0}
    assert [i["external_userid"] for i in api.ok("externalcontact/get_unassigned_list")["info"]] == [corp["c1"]]
    emulator.clock.advance(DAY)
    row = api.ok("externalcontact/resigned/transfer_result",
                 {"handover_userid": "alice", "takeover_userid": "carol"})["customer"][0]
    assert row["status"] == 1
    assert emulator.wait_idle()
    events = receiver.events()[before:]
    assert len(events) == 1 and "add_external_contact" in events[0]  # no del for a resigned member
    # group chats of the resigned owner
    listed = api.ok("externalcontact/groupchat/list", {"limit": 10, "status_filter": 1})["group_chat_list"]
    assert listed == [{"chat_id": chat, "status": 1}]
    failed = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "bob"})
    assert failed["failed_chat_list"][0]["errcode"] == 90502
    ok = api.ok("externalcontact/groupchat/transfer", {"chat_id_list": [chat, "wrnope"], "new_owner": "bob"})
    assert [(f["chat_id"], f["errcode"]) for f in ok["failed_chat_list"]] == [("wrnope", 90501)]
    info = api.ok("externalcontact/groupchat/get", {"chat_id": chat})["group_chat"]
    assert info["owner"] == "bob"
    assert api.ok("externalcontact/groupchat/list", {"limit": 10, "status_filter": 3})["group_chat_list"][0]["status"] == 3


def test_group_chat_transfer_codes(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    chat = emulator.act.group_chat_created("alice", ["bob"], "群")
    assert api.code("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [], "new_owner": "bob"}) == 40058
    assert api.code("externalcontact/groupchat/onjob_transfer", {"chat_id_list": ["x"] * 101, "new_owner": "bob"}) == 40058
    assert api.code("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "ghost"}) == 60111
    failed = api.ok("externalcontact/groupchat/transfer", {"chat_id_list": [chat], "new_owner": "bob"})["failed_chat_list"]
    assert failed[0]["errcode"] == 90500 and failed[0]["errmsg"]
    same = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "alice"})
    assert same["failed_chat_list"][0]["errcode"] == 90504
    assert api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "bob"})["failed_chat_list"] == []
    assert api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "carol"})["failed_chat_list"] == []
    third = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "alice"})
    assert third["failed_chat_list"][0]["errcode"] == 40128  # 2 per 90 days
