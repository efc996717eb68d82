"""§4.6 corp tags: listing filters and the `deleted` flag, add/edit/del rules and codes."""

from __future__ import annotations

from typing import Any

from tests.emulator.conftest import Api
from wecom.emulator import Emulator


def test_list_all_and_filters(api: Api, corp: dict[str, Any]) -> None:
    groups = api.ok("externalcontact/get_corp_tag_list")["tag_group"]
    assert len(groups) == 1
    group = groups[0]
    assert {"group_id", "group_name", "create_time", "order", "tag"} <= set(group) and "deleted" not in group
    assert [t["name"] for t in group["tag"]] == ["A类", "B类", "C类"]
    assert all(set(t) == {"id", "name", "create_time", "order"} for t in group["tag"])
    by_tag = api.ok("externalcontact/get_corp_tag_list", {"tag_id": [corp["tags"][1]]})["tag_group"]
    assert [t["id"] for t in by_tag[0]["tag"]] == [corp["tags"][1]] and by_tag[0]["tag"][0]["deleted"] is False
    both = api.ok("externalcontact/get_corp_tag_list", {"tag_id": [corp["tags"][1]], "group_id": [corp["group"]]})
    assert len(both["tag_group"][0]["tag"]) == 3  # tag_id ignored when group_id is given


def test_add_corp_tag_rules(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    created = api.ok("externalcontact/add_corp_tag", {"group_name": "行业", "order": 5,
                                                      "tag": [{"name": "教育", "order": 2}, {"name": "医疗"}, {"name": "教育"}]})
    tg = created["tag_group"]
    assert tg["group_name"] == "行业" and tg["order"] == 5 and [t["name"] for t in tg["tag"]] == ["教育", "医疗"]
    assert all(t["id"].startswith("et") for t in tg["tag"])
    again = api.ok("externalcontact/add_corp_tag", {"group_name": "行业", "tag": [{"name": "制造"}]})
    assert again["tag_group"]["group_id"] == tg["group_id"] and [t["name"] for t in again["tag_group"]["tag"]] == ["制造"]
    into = api.ok("externalcontact/add_corp_tag", {"group_id": corp["group"], "group_name": "ignored", "tag": [{"name": "D类"}]})
    assert into["tag_group"]["group_name"] == "客户等级"
    assert api.code("externalcontact/add_corp_tag", {"group_id": corp["group"], "tag": [{"name": "A类"}]}) == 40071
    assert api.code("externalcontact/add_corp_tag", {"group_name": "空组", "tag": []}) == 41018
    assert api.code("externalcontact/add_corp_tag", {"group_name": "长", "tag": [{"name": "字" * 31}]}) == 40072
    assert api.code("externalcontact/add_corp_tag", {"group_id": "etnope", "tag": [{"name": "x"}]}) == 40068
    emulator.corp_tag_limit = 7  # 3 + 教育, 医疗, 制造, D类
    assert api.code("externalcontact/add_corp_tag", {"group_name": "满", "tag": [{"name": "x"}]}) == 40126


def test_edit_corp_tag(api: Api, corp: dict[str, Any]) -> None:
    t1, t2, _ = corp["tags"]
    api.ok("externalcontact/edit_corp_tag", {"id": t1, "name": "重要", "order": 99})
    api.ok("externalcontact/edit_corp_tag", {"id": corp["group"], "name": "等级"})
    group = api.ok("externalcontact/get_corp_tag_list")["tag_group"][0]
    assert group["group_name"] == "等级" and group["tag"][0] == {**group["tag"][0], "id": t1, "name": "重要", "order": 99}
    assert api.code("externalcontact/edit_corp_tag", {"id": t2, "name": "重要"}) == 40071
    assert api.code("externalcontact/edit_corp_tag", {"id": "etnope", "name": "x"}) == 40068
    assert api.code("externalcontact/edit_corp_tag", {"name": "x"}) == 41017
    assert api.code("externalcontact/edit_corp_tag", {"id": t2, "name": "x" * 31}) == 40072


def test_del_corp_tag_and_deleted_flag(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    t1, t2, t3 = corp["tags"]
    emulator.act.staff_edits_tags("alice", corp["c1"], add=[t1])
    assert api.code("externalcontact/del_corp_tag", {}) == 41017
    assert api.code("externalcontact/del_corp_tag", {"tag_id": ["etnope"]}) == 40068
    api.ok("externalcontact/del_corp_tag", {"tag_id": [t1]})
    assert [t["id"] for t in api.ok("externalcontact/get_corp_tag_list")["tag_group"][0]["tag"]] == [t2, t3]
    flagged = api.ok("externalcontact/get_corp_tag_list", {"tag_id": [t1]})["tag_group"][0]["tag"][0]
    assert flagged["deleted"] is True
    assert api.get("externalcontact/get", external_userid=corp["c1"])["follow_user"][0]["tags"] == []
    api.ok("externalcontact/del_corp_tag", {"tag_id": [t2, t3]})
    assert api.ok("externalcontact/get_corp_tag_list")["tag_group"] == []  # the empty group went too
    group = api.ok("externalcontact/get_corp_tag_list", {"group_id": [corp["group"]]})["tag_group"][0]
    assert group["deleted"] is True and all(t["deleted"] for t in group["tag"])
    assert api.code("externalcontact/del_corp_tag", {"group_id": [corp["group"]]}) == 40068
