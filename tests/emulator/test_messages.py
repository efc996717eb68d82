"""§7 mass messages (tasks, results, quota, remind, cancel) and welcome messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import Api, Receiver
from wecom.emulator import Emulator
from wecom.emulator.actions import ActionError

TEXT = {"text": {"content": "新品上市，欢迎咨询"}}


def test_add_msg_template_validation(api: Api, corp: dict[str, Any]) -> None:
    ext = [corp["c1"]]
    assert api.code("externalcontact/add_msg_template", {"external_userid": ext}) == 40058  # no content
    assert api.code("externalcontact/add_msg_template", {**TEXT}) == 40058  # no customers nor sender
    assert api.code("externalcontact/add_msg_template", {**TEXT, "chat_type": "x", "external_userid": ext}) == 40058
    assert api.code("externalcontact/add_msg_template", {"text": {"content": "字" * 1334}, "external_userid": ext}) == 40058
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ["wm"] * 10001}) == 40058
    many = [{"msgtype": "link", "link": {"title": "t", "url": "http://127.0.0.1/"}}] * 10
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ext, "attachments": many}) == 41064
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ext,
                                                         "attachments": [{"msgtype": "voice", "voice": {}}]}) == 41065
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ext,
                                                         "attachments": [{"msgtype": "image"}]}) == 41065
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ext,
                                                         "attachments": [{"msgtype": "file", "file": {"media_id": "x"}}]}) == 40007
    assert api.code("externalcontact/add_msg_template", {**TEXT, "external_userid": ["wmnobody"]}) == 41048
    assert api.code("externalcontact/add_msg_template", {**TEXT, "chat_type": "group"}) == 41009


def test_tasks_results_and_quota(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    c1, c2 = corp["c1"], corp["c2"]
    first = api.ok("externalcontact/add_msg_template", {**TEXT, "external_userid": [c1, c2, "wmnobody"]})
    assert first["fail_list"] == ["wmnobody"] and first["msgid"]
    tasks = api.ok("externalcontact/get_groupmsg_task", {"msgid": first["msgid"]})
    # c1 is followed by alice and bob: the most recent contact (bob) gets it; one task per sender
    assert sorted(t["userid"] for t in tasks["task_list"]) == ["alice", "bob"]
    assert all(t["status"] == 0 and "send_time" not in t for t in tasks["task_list"]) and tasks["next_cursor"] == ""
    result = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": first["msgid"], "userid": "alice"})
    assert result["send_list"] == [{"external_userid": c2, "userid": "alice", "status": 0}]
    emulator.act.customer_deletes_staff("alice", c2)
    assert emulator.act.staff_sends_groupmsg(first["msgid"], "alice") == {"sent": 0, "not_friend": 1, "quota": 0}
    emulator.act.staff_sends_groupmsg(first["msgid"], "bob")
    sent = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": first["msgid"], "userid": "bob"})["send_list"]
    assert sent[0]["status"] == 1 and isinstance(sent[0]["send_time"], int)
    tasks = api.ok("externalcontact/get_groupmsg_task", {"msgid": first["msgid"]})["task_list"]
    assert all(t["status"] == 2 and t["send_time"] for t in tasks)
    second = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "bob"})
    emulator.act.staff_sends_groupmsg(second["msgid"], "bob")
    again = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": second["msgid"], "userid": "bob"})["send_list"]
    assert [r["status"] for r in again] == [3]  # one mass message per customer per day
    emulator.clock.advance(86400)
    third = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "bob"})
    emulator.act.staff_sends_groupmsg(third["msgid"], "bob")
    assert api.ok("externalcontact/get_groupmsg_send_result", {"msgid": third["msgid"], "userid": "bob"})["send_list"][0]["status"] == 1


def test_tag_filter_or_within_and_across_groups(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    t1, t2, t3 = corp["tags"]
    _, (industry,) = emulator.act.corp_tag_group_created("行业", ["教育"])
    emulator.act.staff_edits_tags("alice", corp["c1"], add=[t1, industry])
    emulator.act.staff_edits_tags("alice", corp["c2"], add=[t2])
    filt = {"group_list": [{"tag_list": [t1, t2]}, {"tag_list": [industry]}]}
    data = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "alice", "tag_filter": filt})
    result = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": data["msgid"], "userid": "alice"})
    assert [r["external_userid"] for r in result["send_list"]] == [corp["c1"]]
    assert api.code("externalcontact/add_msg_template", {**TEXT, "sender": "alice",
                                                         "tag_filter": {"group_list": [{"tag_list": [t3]}]}}) == 41048


def test_group_chat_mass_message(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    chat = emulator.act.group_chat_created("alice", [corp["c1"]], "群")
    data = api.ok("externalcontact/add_msg_template", {**TEXT, "chat_type": "group", "sender": "alice",
                                                       "chat_id_list": [chat, "wrother"]})
    assert data["fail_list"] == ["wrother"]
    emulator.act.staff_sends_groupmsg(data["msgid"], "alice")
    row = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": data["msgid"], "userid": "alice"})["send_list"][0]
    assert row["chat_id"] == chat and "external_userid" not in row and row["status"] == 1
    now = emulator.clock.now()
    listed = api.ok("externalcontact/get_groupmsg_list_v2", {"chat_type": "group", "start_time": now - 60,
                                                            "end_time": now + 60})["group_msg_list"]
    assert [m["msgid"] for m in listed] == [data["msgid"]]
    assert listed[0]["create_type"] == 0 and "creator" not in listed[0] and listed[0]["text"] == TEXT["text"]
    assert api.code("externalcontact/get_groupmsg_list_v2", {"chat_type": "group", "start_time": now - 40 * 86400,
                                                             "end_time": now}) == 40058


def test_remind_and_cancel(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "alice"})["msgid"]
    assert api.code("externalcontact/remind_groupmsg_send", {}) == 41046
    assert api.code("externalcontact/remind_groupmsg_send", {"msgid": "msgnope"}) == 41047
    for _ in range(3):
        api.ok("externalcontact/remind_groupmsg_send", {"msgid": msgid})
    assert api.code("externalcontact/remind_groupmsg_send", {"msgid": msgid}) == 41094
    emulator.clock.advance(86401)
    api.ok("externalcontact/remind_groupmsg_send", {"msgid": msgid})
    api.ok("externalcontact/cancel_groupmsg_send", {"msgid": msgid})
    assert api.code("externalcontact/cancel_groupmsg_send", {"msgid": msgid}) == 41093
    assert api.code("externalcontact/remind_groupmsg_send", {"msgid": msgid}) == 41093


def _welcome_code(receiver: Receiver) -> str:
    event = [e for e in receiver.events() if "<WelcomeCode>" in e][-1]
    return event.split("<WelcomeCode><![CDATA[")[1].split("]]>")[0]


def test_welcome_code_single_use_and_20_seconds(api: Api, corp: dict[str, Any], emulator: Emulator,
                                                receiver: Receiver) -> None:
    emulator.act.customer_adds_staff("carol", name="新客户")
    assert emulator.wait_idle()
    code = _welcome_code(receiver)
    assert api.code("externalcontact/send_welcome_msg", {**TEXT}) == 41049
    assert api.code("externalcontact/send_welcome_msg", {**TEXT, "welcome_code": "nope"}) == 41050
    assert api.code("externalcontact/send_welcome_msg", {"welcome_code": code}) == 40058  # nothing to send
    api.ok("externalcontact/send_welcome_msg", {**TEXT, "welcome_code": code})
    assert api.code("externalcontact/send_welcome_msg", {**TEXT, "welcome_code": code}) == 41051
    assert emulator.state.welcome_messages[-1]["userid"] == "carol"
    emulator.act.customer_adds_staff("carol", name="又一位")
    assert emulator.wait_idle()
    late = _welcome_code(receiver)
    emulator.clock.advance(21)
    assert api.code("externalcontact/send_welcome_msg", {**TEXT, "welcome_code": late}) == 41050
    emulator.act.customer_adds_staff("carol", name="不要欢迎语", welcome_code=False)
    assert emulator.wait_idle()
    assert "<WelcomeCode>" not in receiver.events()[-1]


# ---------------------------------------------------------------- quota modes, confirmation, paging, cancel


def _many_customers(emulator: Emulator, userid: str, n: int) -> list[str]:
    return [emulator.act.customer_adds_staff(userid, name=f"客户{i}", welcome_code=False) for i in range(n)]


def test_limit_above_the_maximum_falls_back_to_the_default_and_every_page_is_reachable(
        api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    exts = _many_customers(emulator, "carol", 1203)
    msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "carol", "external_userid": exts})["msgid"]
    first = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": "carol", "limit": 5000})
    assert len(first["send_list"]) == 500 and first["next_cursor"]  # 5000 > 1000: the default 500, not 1000
    assert len(api.ok("externalcontact/get_groupmsg_send_result",
                      {"msgid": msgid, "userid": "carol", "limit": 1000})["send_list"]) == 1000
    seen, cursor = [], ""
    while True:
        page = api.ok("externalcontact/get_groupmsg_send_result",
                      {"msgid": msgid, "userid": "carol", "limit": 1001, "cursor": cursor})
        seen += [r["external_userid"] for r in page["send_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(exts)
    for _ in range(3):
        api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "carol", "external_userid": exts[:1]})
    now = emulator.clock.now()
    window = {"chat_type": "single", "start_time": now - 60, "end_time": now + 60, "filter_type": 0}
    assert len(api.ok("externalcontact/get_groupmsg_list_v2", {**window, "limit": 2})["group_msg_list"]) == 2
    listed = api.ok("externalcontact/get_groupmsg_list_v2", {**window, "limit": 101})  # falls back to 50
    assert len(listed["group_msg_list"]) == 4 and listed["next_cursor"] == ""
    page1 = api.ok("externalcontact/get_groupmsg_list_v2", {**window, "limit": 3})
    page2 = api.ok("externalcontact/get_groupmsg_list_v2", {**window, "limit": 3, "cursor": page1["next_cursor"]})
    assert len(page1["group_msg_list"]) == 3 and len(page2["group_msg_list"]) == 1 and page2["next_cursor"] == ""
    assert api.code("externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": "x"}) == 40058


def test_all_members_confirm_after_a_delay_of_the_clock(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    emulator.act.groupmsg_settings(auto_confirm=3600)
    msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "external_userid": [corp["c1"], corp["c2"]]})["msgid"]
    tasks = api.ok("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    assert {t["status"] for t in tasks} == {0}
    emulator.clock.advance(3599)
    assert {t["status"] for t in api.ok("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]} == {0}
    emulator.clock.advance(2)
    tasks = api.ok("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]
    assert {t["status"] for t in tasks} == {2}
    created = emulator.state.msg_templates[msgid].create_time
    assert {t["send_time"] for t in tasks} == {created + 3600}  # sent when the delay ran out, not when read
    emulator.act.groupmsg_settings(auto_confirm=None)
    later = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "alice"})["msgid"]
    emulator.clock.advance(86400 * 5)
    assert api.ok("externalcontact/get_groupmsg_task", {"msgid": later})["task_list"][0]["status"] == 0


def test_quota_per_china_day_and_per_natural_month(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    c1 = corp["c1"]

    def send_now() -> int:
        msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "alice", "external_userid": [c1]})["msgid"]
        emulator.act.staff_sends_groupmsg(msgid, "alice")
        return api.ok("externalcontact/get_groupmsg_send_result",
                      {"msgid": msgid, "userid": "alice"})["send_list"][0]["status"]

    # go to 23:00 China time: the next China day starts an hour later, not at UTC midnight
    now = emulator.clock.now()
    emulator.clock.advance((15 * 3600 - now % 86400) % 86400)
    assert send_now() == 1 and send_now() == 3
    emulator.clock.advance(3600)
    assert send_now() == 1

    emulator.act.groupmsg_settings(quota=4, period="month")
    emulator.state.received.clear()
    results = [send_now() for _ in range(5)]
    assert results == [1, 1, 1, 1, 3]
    emulator.clock.advance(40 * 86400)  # another natural month
    assert send_now() == 1


def test_member_created_messages_are_listed_with_their_creator_and_spend_the_quota(
        api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    own = emulator.act.staff_creates_groupmsg("alice", [corp["c2"]], text="店长推荐")
    now = emulator.clock.now()
    window = {"chat_type": "single", "start_time": now - 60, "end_time": now + 60}
    listed = api.ok("externalcontact/get_groupmsg_list_v2", {**window, "filter_type": 1})["group_msg_list"]
    assert [(m["msgid"], m["creator"], m["create_type"]) for m in listed] == [(own, "alice", 1)]
    assert api.ok("externalcontact/get_groupmsg_list_v2", {**window, "filter_type": 0})["group_msg_list"] == []
    assert [m["msgid"] for m in api.ok("externalcontact/get_groupmsg_list_v2", window)["group_msg_list"]] == [own]
    task = api.ok("externalcontact/get_groupmsg_task", {"msgid": own})["task_list"]
    assert task[0]["userid"] == "alice" and task[0]["status"] == 2
    ours = api.ok("externalcontact/add_msg_template", {**TEXT, "sender": "alice", "external_userid": [corp["c2"]]})
    emulator.act.staff_sends_groupmsg(ours["msgid"], "alice")
    result = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": ours["msgid"], "userid": "alice"})
    assert result["send_list"][0]["status"] == 3  # the member's own message spent today's quota


def test_a_cancelled_message_answers_41093_and_cannot_be_confirmed(api: Api, corp: dict[str, Any],
                                                                   emulator: Emulator) -> None:
    msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "external_userid": [corp["c1"], corp["c2"]]})["msgid"]
    emulator.act.staff_sends_groupmsg(msgid, "alice")
    api.ok("externalcontact/cancel_groupmsg_send", {"msgid": msgid})
    assert api.code("externalcontact/get_groupmsg_task", {"msgid": msgid}) == 41093
    # what was sent before the cancel stays sent; the rest can no longer be sent
    sent = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": "alice"})["send_list"]
    assert [r["status"] for r in sent] == [1]
    with pytest.raises(ActionError):
        emulator.act.staff_sends_groupmsg(msgid, "bob")
    assert emulator.act.staff_sends_all_groupmsgs() == 0


def test_group_results_list_only_the_chats_the_owner_sent_to(api: Api, corp: dict[str, Any],
                                                             emulator: Emulator) -> None:
    chats = [emulator.act.group_chat_created("alice", [corp["c1"]], f"群{i}") for i in range(3)]
    msgid = api.ok("externalcontact/add_msg_template", {**TEXT, "chat_type": "group", "sender": "alice",
                                                        "chat_id_list": chats})["msgid"]
    assert api.ok("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": "alice"})["send_list"] == []
    emulator.act.staff_sends_groupmsg(msgid, "alice", chat_ids=chats[:2])
    rows = api.ok("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": "alice"})["send_list"]
    assert sorted(r["chat_id"] for r in rows) == sorted(chats[:2]) and {r["status"] for r in rows} == {1}
    assert api.ok("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"][0]["status"] == 2
