"""§5 handover: on-job and resigned transfers over the emulator clock, their codes and callbacks;
unassigned customers; group chat transfers."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import Api, Receiver
from wecom.emulator import Emulator
from wecom.emulator.state import Customer as EmuCustomer

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


# ---------------------------------------------------------------- what a transfer ends in (§5.1, §5.2)


def _result(api: Api, handover: str = "alice", takeover: str = "carol",
            path: str = "externalcontact/transfer_result") -> dict[str, tuple[int, int]]:
    rows = api.ok(path, {"handover_userid": handover, "takeover_userid": takeover})["customer"]
    return {r["external_userid"]: (r["status"], r["takeover_time"]) for r in rows}


def test_no_record_when_the_relation_ends_before_the_takeover(api: Api, corp: dict[str, Any], emulator: Emulator,
                                                             receiver: Receiver) -> None:
    c1, c2 = corp["c1"], corp["c2"]
    assert _transfer(api, [c1, c2]) == {c1: 0, c2: 0}
    emulator.act.staff_deletes_customer("alice", c2)  # the handover member deletes the customer meanwhile
    assert emulator.wait_idle()
    before = len(receiver.events())
    emulator.clock.advance(DAY)
    assert _result(api)[c2] == (5, 0)
    assert _result(api)[c1][0] == 1
    assert emulator.wait_idle()
    events = receiver.events()[before:]
    assert not any(c2 in e for e in events)  # nothing happened to c2: no add, no delete, no failure


def test_no_add_event_when_the_takeover_had_the_customer_by_transfer_before(
        api: Api, corp: dict[str, Any], emulator: Emulator, receiver: Receiver) -> None:
    c2 = corp["c2"]
    assert _transfer(api, [c2], takeover="carol") == {c2: 0}
    emulator.clock.advance(DAY)
    assert _transfer(api, [c2], handover="carol", takeover="alice") == {c2: 0}  # alice had c2 before, by adding
    emulator.clock.advance(DAY)
    assert emulator.wait_idle()
    adds = [e for e in receiver.events() if "add_external_contact" in e and c2 in e]
    assert [("carol" in e, "alice" in e) for e in adds] == [(True, False), (False, True)]
    # carol had c2 before by a transfer: a third (after 90 days) brings it back without an add event
    emulator.clock.advance(91 * DAY)
    assert _transfer(api, [c2], handover="alice", takeover="carol") == {c2: 0}
    emulator.clock.advance(DAY)
    assert emulator.wait_idle()
    assert _result(api, "alice", "carol")[c2][0] == 1 and emulator.state.relation("carol", c2) is not None
    assert len([e for e in receiver.events() if "add_external_contact" in e and c2 in e]) == 2


def test_takeover_at_the_customer_limit_ends_4_with_transfer_fail(api: Api, corp: dict[str, Any],
                                                                  emulator: Emulator, receiver: Receiver) -> None:
    c1, c2 = corp["c1"], corp["c2"]
    extra = emulator.act.customer_adds_staff("carol", name="客户丙", welcome_code=False)
    emulator.act.customer_limit_set(2)  # carol has 1: the first customer taken over fills her up
    assert _transfer(api, [c1, c2]) == {c1: 0, c2: 0}
    emulator.clock.advance(DAY)
    assert sorted(status for status, _ in _result(api).values()) == [1, 4]
    assert emulator.wait_idle()
    fails = [e for e in receiver.events() if "transfer_fail" in e]
    assert len(fails) == 1 and "<FailReason><![CDATA[customer_limit_exceed]]></FailReason>" in fails[0]
    assert extra  # carol keeps her own customer


def test_takeover_without_customer_contact_is_refused(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    emulator.act.staff_customer_contact("carol", enabled=False)
    body = {"handover_userid": "alice", "takeover_userid": "carol", "external_userid": [corp["c1"]]}
    assert api.code("externalcontact/transfer_customer", body) == 84074


def test_transfer_result_pages_by_1000_with_a_cursor(api: Api, emulator: Emulator) -> None:
    st = emulator.state
    emulator.act.add_staff("alice", "张三")
    emulator.act.add_staff("bob", "李四")
    with st.lock:
        ids = [f"wm{i:06d}BULK" for i in range(1500)]
        for ext in ids:
            st.customers[ext] = EmuCustomer(ext, "客户")
            st.add_relation("alice", st.customers[ext], emulator.clock.now())
    for i in range(0, 1500, 100):
        assert set(_transfer(api, ids[i:i + 100], takeover="bob").values()) == {0}
    first = api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "bob"})
    assert len(first["customer"]) == 1000 and first["next_cursor"]
    rest = api.ok("externalcontact/transfer_result", {"handover_userid": "alice", "takeover_userid": "bob",
                                                      "cursor": first["next_cursor"]})
    assert len(rest["customer"]) == 500 and rest["next_cursor"] == ""
    assert {r["external_userid"] for r in first["customer"] + rest["customer"]} == set(ids)


def test_unassigned_cursor_is_stable_while_transfers_start(api: Api, emulator: Emulator) -> None:
    st = emulator.state
    for userid, name in (("alice", "张三"), ("bob", "李四"), ("carol", "王五")):
        emulator.act.add_staff(userid, name)
    with st.lock:
        ids = [f"wm{i:06d}LEFT" for i in range(250)]
        for ext in ids:
            st.customers[ext] = EmuCustomer(ext, "客户")
            st.add_relation("alice" if ext < ids[150] else "bob", st.customers[ext], emulator.clock.now())
    emulator.act.staff_resigns("alice")
    emulator.clock.advance(10)
    emulator.act.staff_resigns("bob")  # resigned later: listed first
    first = api.ok("externalcontact/get_unassigned_list", {"page_size": 100})
    assert [r["handover_userid"] for r in first["info"]] == ["bob"] * 100 and not first["is_last"]
    # customers of the first page are handed over before the next page is read: nothing is skipped
    assert set(_transfer(api, [r["external_userid"] for r in first["info"][:100]], handover="bob",
                         path="externalcontact/resigned/transfer_customer").values()) == {0}
    seen = [r["external_userid"] for r in first["info"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.ok("externalcontact/get_unassigned_list", {"page_size": 100, "cursor": cursor})
        seen += [r["external_userid"] for r in page["info"]]
        cursor = page["next_cursor"]
        assert page["is_last"] == (cursor == "")
    assert sorted(seen) == sorted(ids)
    assert api.code("externalcontact/get_unassigned_list", {"cursor": "bm9wZQ"}) == 40058


def test_legacy_page_id_paging_stops_at_50000(api: Api, emulator: Emulator) -> None:
    st = emulator.state
    emulator.act.add_staff("alice", "张三")
    with st.lock:
        for i in range(50_100):
            ext = f"wm{i:06d}MANY"
            st.customers[ext] = EmuCustomer(ext, "客户")
            st.add_relation("alice", st.customers[ext], 0)
    emulator.act.staff_resigns("alice")
    last = api.ok("externalcontact/get_unassigned_list", {"page_id": 49, "page_size": 1000})
    assert len(last["info"]) == 1000 and last["is_last"] is True
    assert api.ok("externalcontact/get_unassigned_list", {"page_id": 50, "page_size": 1000})["info"] == []


# ---------------------------------------------------------------- group chats (§5.5)


def test_chats_whose_new_owner_cannot_take_them(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    chat = emulator.act.group_chat_created("alice", ["bob"], "群一")
    full = emulator.act.group_chat_created("alice", ["bob"] + [f"wm{i:04d}" for i in range(498)], "满员群")
    emulator.act.staff_customer_contact("carol", enabled=False)
    failed = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat], "new_owner": "carol"})
    assert [(f["chat_id"], f["errcode"]) for f in failed["failed_chat_list"]] == [(chat, 84074)]
    emulator.act.staff_customer_contact("carol", enabled=True)
    failed = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [chat, full], "new_owner": "carol"})
    assert [(f["chat_id"], f["errcode"]) for f in failed["failed_chat_list"]] == [(full, 90503)]
    assert emulator.state.group_chats[chat].owner == "carol"
    # bob is in the full chat already: it can be his
    assert api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": [full], "new_owner": "bob"})[
        "failed_chat_list"] == []


def test_300_chats_a_day_from_one_owner(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    chats = [emulator.act.group_chat_created("alice", ["bob"], f"群{i}") for i in range(301)]
    for i in range(0, 300, 100):
        assert api.ok("externalcontact/groupchat/onjob_transfer",
                      {"chat_id_list": chats[i:i + 100], "new_owner": "carol"})["failed_chat_list"] == []
    last = api.ok("externalcontact/groupchat/onjob_transfer", {"chat_id_list": chats[300:], "new_owner": "carol"})
    assert last["failed_chat_list"][0]["errcode"] == 45009
    emulator.clock.advance(DAY)
    assert api.ok("externalcontact/groupchat/onjob_transfer",
                  {"chat_id_list": chats[300:], "new_owner": "carol"})["failed_chat_list"] == []


def test_a_resigned_chat_handed_over_once(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    chat = emulator.act.group_chat_created("alice", ["bob"], "群")
    emulator.act.staff_resigns("alice")
    assert api.ok("externalcontact/groupchat/transfer", {"chat_id_list": [chat], "new_owner": "bob"})[
        "failed_chat_list"] == []
    again = api.ok("externalcontact/groupchat/transfer", {"chat_id_list": [chat], "new_owner": "carol"})
    assert again["failed_chat_list"][0]["errcode"] == 90508
