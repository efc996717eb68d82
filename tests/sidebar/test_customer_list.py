"""GET /api/v1/customers: visibility by role, each filter and their combination, keyset pagination,
parameter errors, and a fixed number of queries per page.

The customer base is written straight into the database (no emulator needed):

    staff zhangsan, lisi (dept 1, manager laowang), laowang (dept 1), wangwu (dept 2)
    tags 客户等级 {A类, B类, C类 (deleted)}, 行业 {教育}
    customers, oldest (lowest id) first:
      a     zhangsan: A类 + 教育 + C类 (deleted)      stage 意向客户  name "Alice Wang", corp "ACME 科技"
      b     zhangsan: A类; lisi: B类 + A类, remark "老客户VIP"; wangwu LOST: 教育   stage 成交客户
      c     wangwu: B类                               no stage        corp_full_name "华南贸易有限公司"
      d     lisi, LOST: 教育                           (every relation lost: admins only)
      pct   lisi: remark "满意度100%"                  name "50%折扣"
      near  lisi                                      name "500折扣"
      und   zhangsan                                  name "a_b"
      und2  zhangsan                                  name "axb"
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from tests.helpers import TEST_CORP_ID

UTC = dt.timezone.utc
URL = "/api/v1/customers"


@dataclass
class World:
    customers: dict[str, Any] = field(default_factory=dict)  # nickname → Customer
    tags: dict[str, str] = field(default_factory=dict)  # name → WeCom tag id


def _token(db_session: Any, role: str, userid: str | None = None) -> dict[str, str]:
    from identity.service import create_api_token
    from crm.service import ensure_corp

    ensure_corp(TEST_CORP_ID)
    _, secret = create_api_token(TEST_CORP_ID, f"list-{role}-{userid or 'x'}", role, userid)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _add(db_session: Any, world: World, nick: str, follows: list[tuple[str, list[str], str]], *,
         name: str | None = None, stage: str | None = None, corp_name: str = "", corp_full_name: str = "",
         lost: bool = False, day: int = 1, remarks: dict[str, str] | None = None) -> Any:
    """follows: (userid, tag names, status); relations are added on consecutive hours of `day` (Jan 2026)."""
    from crm.models import Customer, FollowRelation, Tag, TagAssignment

    customer = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_{nick}", name=name or f"客户{nick}", stage=stage,
                        corp_name=corp_name, corp_full_name=corp_full_name, avatar=f"https://img.test/{nick}.png")
    db_session.add(customer)
    db_session.flush()
    for hour, (userid, tag_names, status) in enumerate(follows):
        rel = FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid=userid, status=status,
                             remark=(remarks or {}).get(userid, ""),
                             added_at=dt.datetime(2026, 1, day, hour, tzinfo=UTC))
        db_session.add(rel)
        db_session.flush()
        for tag_name in tag_names:
            tag = db_session.query(Tag).filter_by(corp_id=TEST_CORP_ID, tag_id=world.tags[tag_name]).one()
            db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=rel.id, tag_pk=tag.id,
                                         customer_id=customer.id))
    db_session.flush()
    world.customers[nick] = customer
    return customer


@pytest.fixture()
def world(db_session: Any) -> Iterator[World]:
    from crm.models import Staff, Tag, TagGroup
    from crm.service import ensure_corp

    ensure_corp(TEST_CORP_ID)
    made = World()
    for userid, dept, manager in (("zhangsan", 1, None), ("lisi", 1, "laowang"), ("laowang", 1, None),
                                  ("wangwu", 2, None)):
        db_session.add(Staff(corp_id=TEST_CORP_ID, userid=userid, name=userid, department_ids=[dept],
                             manager_userid=manager))
    for gid, gname, order, names in (("etg_level", "客户等级", 2, ["A类", "B类", "C类"]),
                                     ("etg_industry", "行业", 1, ["教育"])):
        group = TagGroup(corp_id=TEST_CORP_ID, group_id=gid, name=gname, order=order)
        db_session.add(group)
        db_session.flush()
        for i, tag_name in enumerate(names):
            tag_id = f"et_{gid}_{i}"
            deleted = dt.datetime(2026, 1, 1, tzinfo=UTC) if tag_name == "C类" else None
            db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=tag_id, group_pk=group.id, name=tag_name,
                               order=10 - i, deleted_at=deleted))
            made.tags[tag_name] = tag_id
    db_session.flush()
    _add(db_session, made, "a", [("zhangsan", ["A类", "教育", "C类"], "active")], name="Alice Wang",
         stage="意向客户", corp_name="ACME 科技", day=2)
    _add(db_session, made, "b", [("zhangsan", ["A类"], "active"), ("lisi", ["B类", "A类"], "active"),
                                  ("wangwu", ["教育"], "lost")],
         stage="成交客户", remarks={"lisi": "老客户VIP"}, day=3)
    _add(db_session, made, "c", [("wangwu", ["B类"], "active")], corp_full_name="华南贸易有限公司", day=4)
    _add(db_session, made, "d", [("lisi", ["教育"], "lost")], day=5)
    _add(db_session, made, "pct", [("lisi", [], "active")], name="50%折扣", remarks={"lisi": "满意度100%"}, day=6)
    _add(db_session, made, "near", [("lisi", [], "active")], name="500折扣", day=7)
    _add(db_session, made, "und", [("zhangsan", [], "active")], name="a_b", day=8)
    _add(db_session, made, "und2", [("zhangsan", [], "active")], name="axb", day=9)
    db_session.commit()
    yield made


def _nicks(body: dict[str, Any]) -> list[str]:
    return [c["external_userid"].removeprefix("wm_") for c in body["customers"]]


def _get(client: Any, headers: dict[str, str], **params: Any) -> Any:
    return client.get(URL, query_string=params, headers=headers)


def _ok(client: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = _get(client, headers, **params)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# ---------------------------------------------------------------- visibility


def test_anonymous_is_a_401(client: Any, world: World) -> None:
    answer = client.get(URL)
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthorized"


def test_each_role_sees_its_own_customers_newest_first(client: Any, world: World, db_session: Any) -> None:
    zhangsan = _ok(client, _token(db_session, "staff", "zhangsan"))
    assert _nicks(zhangsan) == ["und2", "und", "b", "a"] and zhangsan["next_cursor"] == ""
    # lisi's relation with d is lost: not listed, though the profile keeps its history
    assert _nicks(_ok(client, _token(db_session, "staff", "lisi"))) == ["near", "pct", "b"]
    assert _nicks(_ok(client, _token(db_session, "staff", "wangwu"))) == ["c"]
    # laowang manages lisi and shares department 1 with zhangsan; wangwu (dept 2) is out of scope
    assert _nicks(_ok(client, _token(db_session, "manager", "laowang"))) == ["und2", "und", "near", "pct", "b", "a"]
    marketer = _ok(client, _token(db_session, "marketer"))
    assert _nicks(marketer) == ["und2", "und", "near", "pct", "c", "b", "a"]
    assert not any(c["lost"] for c in marketer["customers"])
    admin = _ok(client, _token(db_session, "admin"))
    assert _nicks(admin) == ["und2", "und", "near", "pct", "d", "c", "b", "a"]
    assert [c["external_userid"] for c in admin["customers"] if c["lost"]] == ["wm_d"]
    # a token with a limited role but no staff member behind it sees nobody
    assert _ok(client, _token(db_session, "manager"))["customers"] == []


def test_item_shape_tags_from_active_relations_once_and_no_deleted_tag(client: Any, world: World,
                                                                       db_session: Any) -> None:
    admin = _token(db_session, "admin")
    items = {c["external_userid"]: c for c in _ok(client, admin)["customers"]}
    a, b, c, d = (items[f"wm_{n}"] for n in "abcd")
    assert set(b) == {"external_userid", "name", "corp_name", "stage", "avatar", "follow_users", "tags",
                      "added_at", "lost"}
    assert (a["name"], a["corp_name"], a["stage"], a["avatar"]) == ("Alice Wang", "ACME 科技", "意向客户",
                                                                    "https://img.test/a.png")
    assert a["tags"] == [{"tag_id": world.tags["A类"], "name": "A类", "group_name": "客户等级"},
                         {"tag_id": world.tags["教育"], "name": "教育", "group_name": "行业"}]  # C类 is deleted
    assert b["follow_users"] == ["zhangsan", "lisi"]  # in the order they added the customer; not wangwu (lost)
    # A类 on two relations, listed once, in catalog order; not 教育, which only the lost relation carries
    assert [t["name"] for t in b["tags"]] == ["A类", "B类"]
    assert dt.datetime.fromisoformat(b["added_at"]).replace(tzinfo=UTC) == dt.datetime(2026, 1, 3, 0, tzinfo=UTC)
    assert c["corp_name"] == "华南贸易有限公司" and c["stage"] is None and c["follow_users"] == ["wangwu"]
    # a lost customer: nobody follows it now, its tags are shown as they were
    assert d["lost"] is True and d["follow_users"] == [] and [t["name"] for t in d["tags"]] == ["教育"]
    assert dt.datetime.fromisoformat(d["added_at"]).replace(tzinfo=UTC) == dt.datetime(2026, 1, 5, 0, tzinfo=UTC)


def test_staff_see_colleagues_on_a_shared_customer(client: Any, world: World, db_session: Any) -> None:
    body = _ok(client, _token(db_session, "staff", "zhangsan"))
    (b,) = [c for c in body["customers"] if c["external_userid"] == "wm_b"]
    assert b["follow_users"] == ["zhangsan", "lisi"] and [t["name"] for t in b["tags"]] == ["A类", "B类"]


# ---------------------------------------------------------------- filters


def test_tag_filter_needs_every_tag_on_an_active_relation(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, tag=world.tags["A类"])) == ["b", "a"]
    assert _nicks(_ok(client, admin, tag=world.tags["B类"])) == ["c", "b"]
    assert _nicks(_ok(client, admin, tag=[world.tags["A类"], world.tags["B类"]])) == ["b"]
    assert _nicks(_ok(client, admin, tag=[world.tags["A类"], world.tags["教育"]])) == ["a"]
    # d carries 教育 only on its lost relation: it does not "have" the tag, even for an admin
    assert _nicks(_ok(client, admin, tag=world.tags["教育"])) == ["a"]
    # the same tag twice is the same filter; an empty value is ignored
    assert _nicks(_ok(client, admin, tag=[world.tags["B类"], world.tags["B类"], ""])) == ["c", "b"]


def test_stage_filter_matches_any_of_the_stages(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, stage="成交客户")) == ["b"]
    assert _nicks(_ok(client, admin, stage=["成交客户", "意向客户"])) == ["b", "a"]
    assert _ok(client, admin, stage="忠诚客户")["customers"] == []
    unknown = _get(client, admin, stage="不存在的阶段")
    assert unknown.status_code == 422 and "不存在的阶段" in unknown.get_json()["error"]["message"]


def test_userid_filter_is_an_active_relation_with_that_staff_member(client: Any, world: World,
                                                                  db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, userid="lisi")) == ["near", "pct", "b"]  # not d: that relation is lost
    assert _nicks(_ok(client, admin, userid="wangwu")) == ["c"]
    assert _ok(client, admin, userid="nobody")["customers"] == []
    # a staff member asking for a colleague's customers only gets the ones they follow themselves too
    assert _nicks(_ok(client, _token(db_session, "staff", "zhangsan"), userid="lisi")) == ["b"]
    assert _ok(client, _token(db_session, "staff", "zhangsan"), userid="wangwu")["customers"] == []


def test_q_matches_name_corp_name_and_remark_case_insensitively(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, q="alice")) == ["a"]  # name, other case
    assert _nicks(_ok(client, admin, q="acme")) == ["a"]  # corp_name
    assert _nicks(_ok(client, admin, q="华南贸易")) == ["c"]  # corp_full_name when corp_name is empty
    assert _nicks(_ok(client, admin, q="vip")) == ["b"]  # lisi's remark
    assert _nicks(_ok(client, admin, q="  折扣  ")) == ["near", "pct"]  # trimmed
    assert _ok(client, admin, q="没有这个人")["customers"] == []


def test_q_does_not_search_remarks_outside_the_callers_scope(client: Any, world: World, db_session: Any) -> None:
    # b is zhangsan's customer too, but the remark "老客户VIP" is lisi's
    assert _ok(client, _token(db_session, "staff", "zhangsan"), q="VIP")["customers"] == []
    assert _nicks(_ok(client, _token(db_session, "staff", "lisi"), q="VIP")) == ["b"]
    assert _nicks(_ok(client, _token(db_session, "manager", "laowang"), q="VIP")) == ["b"]


def test_q_escapes_percent_and_underscore(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, q="50%")) == ["pct"]  # not "500折扣"
    assert _nicks(_ok(client, admin, q="100%")) == ["pct"]  # remark
    assert _nicks(_ok(client, admin, q="a_b")) == ["und"]  # not "axb"
    assert _nicks(_ok(client, admin, q="%")) == ["pct"]  # a literal %, not "anything"
    assert _nicks(_ok(client, admin, q="_")) == ["und"]
    assert _ok(client, admin, q="\\")["customers"] == []
    too_long = _get(client, admin, q="长" * 101)
    assert too_long.status_code == 400 and too_long.get_json()["error"]["code"] == "bad_query"


def test_filters_combine(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    assert _nicks(_ok(client, admin, tag=world.tags["A类"], stage="成交客户")) == ["b"]
    assert _nicks(_ok(client, admin, tag=world.tags["A类"], userid="lisi")) == ["b"]
    assert _nicks(_ok(client, admin, tag=world.tags["A类"], userid="zhangsan", q="alice")) == ["a"]
    assert _ok(client, admin, tag=world.tags["B类"], stage="意向客户")["customers"] == []
    assert _nicks(_ok(client, admin, userid="lisi", q="折扣")) == ["near", "pct"]
    # filters never widen visibility
    assert _ok(client, _token(db_session, "staff", "wangwu"), tag=world.tags["A类"])["customers"] == []


def test_unknown_or_deleted_tag_is_a_422_naming_it(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    unknown = _get(client, admin, tag=[world.tags["A类"], "etNOPE"])
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["code"] == "invalid" and "etNOPE" in unknown.get_json()["error"]["message"]
    deleted = _get(client, admin, tag=world.tags["C类"])
    assert deleted.status_code == 422
    message = deleted.get_json()["error"]["message"]
    assert "已被删除" in message and world.tags["C类"] in message and "C类" in message


# ---------------------------------------------------------------- pagination


def test_three_pages_without_duplicates_or_gaps(client: Any, world: World, db_session: Any) -> None:
    admin = _token(db_session, "admin")
    everyone = [c["external_userid"] for c in _ok(client, admin)["customers"]]
    assert len(everyone) == 8
    seen: list[str] = []
    pages, cursor = 0, ""
    while True:
        body = _ok(client, admin, limit=3, cursor=cursor)
        pages += 1
        assert 1 <= len(body["customers"]) <= 3
        seen += [c["external_userid"] for c in body["customers"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
        assert pages < 5
    assert pages == 3 and seen == everyone


def test_pages_with_a_filter_and_a_page_that_ends_exactly(client: Any, world: World, db_session: Any) -> None:
    lisi = _token(db_session, "staff", "lisi")
    first = _ok(client, lisi, q="折扣", limit=1)
    second = _ok(client, lisi, q="折扣", limit=1, cursor=first["next_cursor"])
    assert _nicks(first) == ["near"] and _nicks(second) == ["pct"] and second["next_cursor"] == ""
    exact = _ok(client, lisi, limit=3)  # lisi has exactly 3 customers: no empty extra page
    assert len(exact["customers"]) == 3 and exact["next_cursor"] == ""


def test_a_customer_added_between_pages_is_neither_repeated_nor_skipping_others(client: Any, world: World,
                                                                                db_session: Any) -> None:
    admin = _token(db_session, "admin")
    first = _ok(client, admin, limit=4)
    _add(db_session, world, "late", [("zhangsan", [], "active")], day=20)
    db_session.commit()
    rest = _ok(client, admin, limit=10, cursor=first["next_cursor"])
    assert _nicks(first) == ["und2", "und", "near", "pct"] and _nicks(rest) == ["d", "c", "b", "a"]


def test_default_and_maximum_limit(client: Any, world: World, db_session: Any) -> None:
    from crm.models import Customer, FollowRelation

    for i in range(95):
        customer = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_bulk{i:03d}", name=f"批量{i}")
        db_session.add(customer)
        db_session.flush()
        db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid="wangwu"))
    db_session.commit()
    admin = _token(db_session, "admin")
    default = _ok(client, admin)
    assert len(default["customers"]) == 50 and default["next_cursor"]
    full = _ok(client, admin, limit=100)
    assert len(full["customers"]) == 100 and full["next_cursor"]
    tail = _ok(client, admin, limit=100, cursor=full["next_cursor"])
    assert len(tail["customers"]) == 103 - 100 and tail["next_cursor"] == ""


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", " 5", "٣", "99999999999999999999"])
def test_bad_limit_is_a_400(client: Any, world: World, db_session: Any, limit: str) -> None:
    answer = _get(client, _token(db_session, "admin"), limit=limit)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "bad_limit" and "limit" in answer.get_json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["!!!", "abc", "MA", "MDA", "LTE", "MTI=", "NOPE===", "x" * 40, "MTIz\n", " MTIz",
                                    "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"])
def test_malformed_cursor_is_a_400(client: Any, world: World, db_session: Any, cursor: str) -> None:
    # abc: not digits; MA: "0"; MDA: "00"; LTE: "-1"; MTI=: padded; the last: 23 digits
    answer = _get(client, _token(db_session, "admin"), cursor=cursor)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "bad_cursor"


def test_cursor_round_trip() -> None:
    from sidebar.service import decode_cursor, encode_cursor

    for value in (1, 9, 10, 12345, 2**31 - 1, 10**17):
        cursor = encode_cursor(value)
        assert decode_cursor(cursor) == value and "=" not in cursor


# ---------------------------------------------------------------- queries


def test_queries_per_page_do_not_grow_with_the_page(app: Any, client: Any, world: World, db_session: Any) -> None:
    from sqlalchemy import event

    from core.db import db

    admin = _token(db_session, "admin")
    _ok(client, admin, limit=1)  # the token's first use is recorded once; measure the requests after it
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        small = _ok(client, admin, limit=1)
        small_count = len(statements)
        statements.clear()
        large = _ok(client, admin, limit=8)
        large_count = len(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(small["customers"]) == 1 and len(large["customers"]) == 8
    assert small_count == large_count
    relation_reads = [s for s in statements if "FROM follow_relations" in s and "tag_assignments" not in s]
    tag_reads = [s for s in statements if "FROM tag_assignments" in s]
    assert len(relation_reads) == 1 and len(tag_reads) == 1
