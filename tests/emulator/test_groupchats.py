"""§6 group chats and their §3.2 callbacks."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import Api, Receiver
from wecom.emulator import Emulator


def test_list_paging_filters_and_limits(demo_emulator: Emulator) -> None:
    api = Api(demo_emulator)
    assert api.code("externalcontact/groupchat/list", {}) == 40058
    assert api.code("externalcontact/groupchat/list", {"limit": 0}) == 40058
    assert api.code("externalcontact/groupchat/list", {"limit": 1001}) == 40058
    assert api.code("externalcontact/groupchat/list", {"limit": 10, "owner_filter": {"userid_list": ["x"] * 101}}) == 40058
    ids, cursor = [], ""
    while True:
        data = api.ok("externalcontact/groupchat/list", {"limit": 7, "cursor": cursor})
        assert all(set(c) == {"chat_id", "status"} for c in data["group_chat_list"])
        ids += [c["chat_id"] for c in data["group_chat_list"]]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 40
    owner = demo_emulator.state.group_chats[ids[0]].owner
    mine = api.ok("externalcontact/groupchat/list", {"limit": 1000, "owner_filter": {"userid_list": [owner]}})
    assert {c["chat_id"] for c in mine["group_chat_list"]} == {
        c.chat_id for c in demo_emulator.state.group_chats.values() if c.owner == owner}


def test_81017_without_owner_filter_in_a_big_corp(emulator: Emulator) -> None:
    for i in range(1001):
        emulator.state.add_member(f"m{i}", f"成员{i}", [1])
    api = Api(emulator)
    assert api.code("externalcontact/groupchat/list", {"limit": 10}) == 81017
    assert api.ok("externalcontact/groupchat/list", {"limit": 10, "owner_filter": {"userid_list": ["m1"]}})


def test_get_shape_and_member_version(api: Api, corp: dict[str, Any], emulator: Emulator, receiver: Receiver) -> None:
    chat_id = emulator.act.group_chat_created("alice", ["bob", corp["c1"]], "销售客服群")
    assert api.code("externalcontact/groupchat/get", {"chat_id": "wrnope"}) == 40050
    plain = api.ok("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert set(plain) == {"chat_id", "name", "owner", "create_time", "notice", "member_list", "admin_list",
                          "member_version"}
    assert plain["name"] == "销售客服群" and plain["owner"] == "alice"
    assert [(m["userid"], m["type"]) for m in plain["member_list"]] == [("alice", 1), ("bob", 1), (corp["c1"], 2)]
    assert all("name" not in m for m in plain["member_list"])
    assert plain["member_list"][1]["invitor"] == {"userid": "alice"}
    named = api.ok("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})["group_chat"]
    assert [m["name"] for m in named["member_list"]] == ["张三", "李四", "客户甲"]
    v1 = plain["member_version"]
    emulator.act.group_chat_member_joined(chat_id, [corp["c2"]], join_scene=3)
    emulator.act.group_chat_renamed(chat_id, "新名字")
    v2 = api.ok("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert v2["member_version"] != v1 and v2["name"] == "新名字"
    joined = v2["member_list"][-1]
    assert joined["join_scene"] == 3 and "invitor" not in joined
    emulator.act.group_chat_member_left(chat_id, [corp["c2"]], quit_scene=1)
    emulator.act.group_chat_notice(chat_id, "文明沟通")
    emulator.act.group_chat_owner_changed(chat_id, "bob")
    v3 = api.ok("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert v3["member_version"] not in (v1, v2["member_version"]) and v3["owner"] == "bob" and v3["notice"] == "文明沟通"
    emulator.act.group_chat_dismissed(chat_id)
    assert api.code("externalcontact/groupchat/get", {"chat_id": chat_id}) == 49008
    assert emulator.wait_idle()
    events = [e for e in receiver.events() if "change_external_chat" in e]
    details = [e.split("<ChangeType><![CDATA[")[1].split("]]>")[0] + ":" +
               (e.split("<UpdateDetail><![CDATA[")[1].split("]]>")[0] if "UpdateDetail" in e else "") for e in events]
    assert details == ["create:", "update:add_member", "update:change_name", "update:del_member", "update:change_notice",
                       "update:change_owner", "dismiss:"]
    add = events[1]
    assert f"<MemChangeList><Item>{corp['c2']}</Item></MemChangeList>" in add
    assert "<JoinScene>3</JoinScene>" in add and "<MemChangeCnt>1</MemChangeCnt>" in add
    assert f"<LastMemVer><![CDATA[{v1}]]></LastMemVer>" in add
    assert f"<CurMemVer><![CDATA[{v2['member_version']}]]></CurMemVer>" in add
    assert "<QuitScene>1</QuitScene>" in events[3]
