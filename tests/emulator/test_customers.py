"""§4 customers: list/get/batch shapes and paging, remark limits, mark_tag codes; user/get; message/send."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import AGENT_ID, Api
from wecom.emulator import Emulator

FOLLOW_KEYS = {"userid", "remark", "description", "createtime", "remark_corp_name", "remark_mobiles",
               "oper_userid", "add_way"}


def test_follow_user_list_and_list(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    data = api.get("externalcontact/get_follow_user_list")
    assert data["follow_user"] == ["alice", "bob", "carol"]
    emulator.act.staff_resigns("carol")
    assert api.get("externalcontact/get_follow_user_list")["follow_user"] == ["alice", "bob"]
    assert api.get("externalcontact/list", userid="alice")["external_userid"] == [corp["c1"], corp["c2"]]
    assert api.get("externalcontact/list", userid="nobody")["errcode"] == 60111


def test_get_shape(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    emulator.act.staff_edits_tags("alice", corp["c1"], add=[corp["tags"][0]])
    data = api.get("externalcontact/get", external_userid=corp["c1"])
    contact = data["external_contact"]
    assert contact["external_userid"] == corp["c1"] and contact["name"] == "客户甲"
    assert contact["type"] == 1 and isinstance(contact["gender"], int) and contact["avatar"].startswith("http")
    assert "corp_name" not in contact  # type 2 only
    alice, bob = data["follow_user"]
    assert FOLLOW_KEYS <= set(alice) and alice["userid"] == "alice" and bob["userid"] == "bob"
    assert alice["state"] == "expo" and "state" not in bob
    assert alice["oper_userid"] == corp["c1"] and isinstance(alice["createtime"], int)
    assert alice["tags"] == [{"group_name": "客户等级", "tag_name": "A类", "tag_id": corp["tags"][0], "type": 1}]
    assert "next_cursor" not in data
    assert api.get("externalcontact/get")["errcode"] == 41035
    assert api.get("externalcontact/get", external_userid="wmnobody")["errcode"] == 40096


def test_get_pages_follow_user_at_500(emulator: Emulator, api: Api) -> None:
    for i in range(501):
        emulator.state.add_member(f"u{i:03d}", f"成员{i}", [1])
    ext = emulator.act.customer_adds_staff("u000", name="大客户", welcome_code=False)
    for i in range(1, 501):
        emulator.act.customer_adds_staff(f"u{i:03d}", external_userid=ext, welcome_code=False)
    first = api.get("externalcontact/get", external_userid=ext)
    assert len(first["follow_user"]) == 500 and first["next_cursor"]
    second = api.get("externalcontact/get", external_userid=ext, cursor=first["next_cursor"])
    assert [f["userid"] for f in second["follow_user"]] == ["u500"]
    assert not second.get("next_cursor")


def test_batch_get_by_user_pages_and_limits(demo_emulator: Emulator) -> None:
    api = Api(demo_emulator)
    users = api.get("externalcontact/get_follow_user_list")["follow_user"][:3]
    expected = [(r.external_userid, r.userid) for u in users for r in demo_emulator.state.by_user[u]]
    seen: list[tuple[str, str]] = []
    cursor, pages = "", 0
    while True:
        data = api.ok("externalcontact/batch/get_by_user", {"userid_list": users, "cursor": cursor, "limit": 100})
        assert len(data["external_contact_list"]) <= 100
        for row in data["external_contact_list"]:
            assert set(row) == {"external_contact", "follow_info"}
            info = row["follow_info"]
            assert isinstance(info["tag_id"], list) and "tags" not in info
            assert info["tag_id"] == sorted(demo_emulator.state.relation_tags(info["userid"], row["external_contact"]["external_userid"]), key=info["tag_id"].index)
            seen.append((row["external_contact"]["external_userid"], info["userid"]))
        pages += 1
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert seen == expected and pages == -(-len(expected) // 100)
    default = api.ok("externalcontact/batch/get_by_user", {"userid_list": users})
    assert len(default["external_contact_list"]) == 50
    capped = api.ok("externalcontact/batch/get_by_user", {"userid_list": users, "limit": 1000})
    assert len(capped["external_contact_list"]) == 100
    assert api.code("externalcontact/batch/get_by_user", {"userid_list": [f"u{i}" for i in range(101)]}) == 40058
    assert api.code("externalcontact/batch/get_by_user", {"userid_list": []}) == 41009
    assert api.code("externalcontact/batch/get_by_user", {"userid_list": users, "cursor": "bogus!"}) == 40058


def test_type_2_customer_has_corp_fields(demo_emulator: Emulator) -> None:
    api = Api(demo_emulator)
    ext = next(c.external_userid for c in demo_emulator.state.customers.values() if c.type == 2)
    contact = api.get("externalcontact/get", external_userid=ext)["external_contact"]
    assert contact["corp_name"] and contact["corp_full_name"].endswith("有限公司") and "position" in contact


def test_remark_limits_and_effect(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    base = {"userid": "alice", "external_userid": corp["c1"]}
    assert api.code("externalcontact/remark", base) == 40058  # nothing to change
    assert api.code("externalcontact/remark", {**base, "remark": "备" * 21}) == 40058
    assert api.code("externalcontact/remark", {**base, "description": "述" * 151}) == 40058
    assert api.code("externalcontact/remark", {**base, "remark_company": "司" * 21}) == 40058
    assert api.code("externalcontact/remark", {**base, "remark_pic_mediaid": "nope"}) == 40007
    assert api.code("externalcontact/remark", {"userid": "alice", "external_userid": "wmx", "remark": "a"}) == 40096
    assert api.code("externalcontact/remark", {"userid": "carol", "external_userid": corp["c1"], "remark": "a"}) == 84061
    api.ok("externalcontact/remark", {**base, "remark": "备" * 20, "description": "述" * 150,
                                      "remark_company": "腾讯", "remark_mobiles": ["13800000001", "13800000002"]})
    follow = api.get("externalcontact/get", external_userid=corp["c1"])["follow_user"][0]
    assert follow["remark"] == "备" * 20 and follow["description"] == "述" * 150
    assert follow["remark_corp_name"] == "腾讯" and follow["remark_mobiles"] == ["13800000001", "13800000002"]
    api.ok("externalcontact/remark", {**base, "remark_mobiles": [""]})
    assert emulator.state.relations[("alice", corp["c1"])].remark_mobiles == ()


def test_mark_tag_codes_and_effect(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    t1, t2, t3 = corp["tags"]
    base = {"userid": "alice", "external_userid": corp["c1"]}
    assert api.code("externalcontact/mark_tag", base) == 41017
    assert api.code("externalcontact/mark_tag", {**base, "add_tag": ["etnope"]}) == 40068
    assert api.code("externalcontact/mark_tag", {"userid": "alice", "external_userid": "wmnope", "add_tag": [t1]}) == 40096
    assert api.code("externalcontact/mark_tag", {"userid": "carol", "external_userid": corp["c1"], "add_tag": [t1]}) == 84061
    assert api.code("externalcontact/mark_tag", {"userid": "ghost", "external_userid": corp["c1"], "add_tag": [t1]}) == 60111
    api.ok("externalcontact/mark_tag", {**base, "add_tag": [t1, t2]})
    api.ok("externalcontact/mark_tag", {**base, "add_tag": [t3], "remove_tag": [t1]})
    assert emulator.state.relation_tags("alice", corp["c1"]) == {t2, t3}
    assert emulator.state.relation_tags("bob", corp["c1"]) == set()  # per relation
    emulator.act.corp_tag_deleted(t3)
    assert api.code("externalcontact/mark_tag", {**base, "add_tag": [t3]}) == 40068
    assert emulator.state.relation_tags("alice", corp["c1"]) == {t2}


def test_customer_deleted_staff_is_listed_but_read_only(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    emulator.act.customer_deletes_staff("alice", corp["c2"])
    assert corp["c2"] in api.get("externalcontact/list", userid="alice")["external_userid"]
    assert api.code("externalcontact/mark_tag", {"userid": "alice", "external_userid": corp["c2"],
                                                 "add_tag": [corp["tags"][0]]}) == 84061
    assert api.code("externalcontact/remark", {"userid": "alice", "external_userid": corp["c2"], "remark": "x"}) == 84061
    emulator.act.staff_deletes_customer("alice", corp["c2"])
    assert corp["c2"] not in api.get("externalcontact/list", userid="alice")["external_userid"]
    assert api.get("externalcontact/get", external_userid=corp["c2"])["errcode"] == 84061


def test_half_added_contact_is_hidden_until_confirmed(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    ext = emulator.act.customer_adds_staff("bob", name="半添加", half=True)
    assert ext not in api.get("externalcontact/list", userid="bob")["external_userid"]
    assert api.code("externalcontact/mark_tag", {"userid": "bob", "external_userid": ext,
                                                 "add_tag": [corp["tags"][0]]}) == 84061
    emulator.act.staff_confirms_half("bob", ext)
    assert ext in api.get("externalcontact/list", userid="bob")["external_userid"]


def test_user_get(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    data = api.get("user/get", userid="alice")
    assert data["errcode"] == 0 and data["userid"] == "alice" and data["name"] == "张三"
    assert data["department"] == [2] and data["status"] == 1
    emulator.act.staff_resigns("alice")
    assert api.get("user/get", userid="alice")["status"] == 5
    assert api.get("user/get", userid="ghost")["errcode"] == 60111


def test_message_send(emulator: Emulator, corp: dict[str, Any]) -> None:
    agent, contact = Api(emulator, "agent"), Api(emulator, "contact")
    body = {"touser": "alice|ghost", "msgtype": "text", "agentid": int(AGENT_ID), "text": {"content": "你好"}}
    data = agent.ok("message/send", body)
    assert data["invaliduser"] == "ghost" and data["msgid"]
    assert emulator.state.messages[-1]["touser"] == ["alice"]
    assert contact.code("message/send", body) == 48002
    assert agent.code("message/send", {**body, "agentid": 1}) == 40056
    assert agent.code("message/send", {**body, "msgtype": "voice"}) == 40008
    assert agent.code("message/send", {**body, "touser": "ghost"}) == 81013
    card = {"touser": "bob", "msgtype": "textcard", "agentid": AGENT_ID,
            "textcard": {"title": "交接提醒", "description": "有 3 位客户待接替", "url": "http://127.0.0.1/x"}}
    assert agent.ok("message/send", card)["invaliduser"] == ""
    assert agent.code("message/send", {**card, "textcard": {"title": "x"}}) == 40058
