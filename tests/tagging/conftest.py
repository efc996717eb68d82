"""Fixtures for the tagging tests: a small customer base written straight into the database, and API tokens.

`base` builds (corp wwtest…):
    staff zhangsan, lisi (dept 1, manager laowang), wangwu (dept 2)
    tag groups 客户等级 {A类, B类, C类}, 行业 {教育, 金融}; C类 is deleted
    customers (by nickname → Customer):
      a:  zhangsan, tags A类+教育, stage 意向客户, state expo, added 2026-01-10
      b:  zhangsan (A类) + lisi (B类), stage 成交客户, added 2026-02-10 / 2026-03-01
      c:  wangwu, tag B类 + 金融, no stage, state web, added 2026-03-05
      d:  lisi, tag 教育 on a LOST relation (so d does not "have" 教育), added 2026-01-20
      gone: every relation lost (never in a segment)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.helpers import TEST_CORP_ID

UTC = dt.timezone.utc


@dataclass
class Base:
    customers: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # name → WeCom tag id
    relations: dict[tuple[str, str], Any] = field(default_factory=dict)  # (nickname, userid) → relation


def add_customer(db_session: Any, base: Base, nick: str, follows: list[tuple[str, list[str], str, str]],
                 stage: str | None = None) -> Any:
    """follows: (userid, tag names, added ISO date, status)."""
    from crm.models import Customer, FollowRelation, Tag, TagAssignment

    customer = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_{nick}", name=f"客户{nick}", stage=stage,
                        unionid=f"union_{nick}")
    db_session.add(customer)
    db_session.flush()
    for userid, tag_names, added, status in follows:
        rel = FollowRelation(corp_id=TEST_CORP_ID, customer_id=customer.id, userid=userid,
                             added_at=dt.datetime.fromisoformat(added).replace(tzinfo=UTC), status=status,
                             state={"a": "expo", "c": "web"}.get(nick, ""))
        db_session.add(rel)
        db_session.flush()
        base.relations[(nick, userid)] = rel
        for name in tag_names:
            tag = db_session.query(Tag).filter_by(corp_id=TEST_CORP_ID, tag_id=base.tags[name]).one()
            db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=rel.id, tag_pk=tag.id,
                                         customer_id=customer.id))
    db_session.flush()
    base.customers[nick] = customer
    return customer


@pytest.fixture()
def base(db_session: Any) -> Base:
    from crm.models import Staff, Tag, TagGroup
    from crm.service import ensure_corp

    ensure_corp(TEST_CORP_ID)
    made = Base()
    for userid, dept, manager in (("zhangsan", 1, None), ("lisi", 1, "laowang"), ("wangwu", 2, None),
                                  ("laowang", 1, None)):
        db_session.add(Staff(corp_id=TEST_CORP_ID, userid=userid, name=userid, department_ids=[dept],
                             manager_userid=manager))
    for gid, gname, names in (("etg_level", "客户等级", ["A类", "B类", "C类"]), ("etg_industry", "行业", ["教育", "金融"])):
        group = TagGroup(corp_id=TEST_CORP_ID, group_id=gid, name=gname)
        db_session.add(group)
        db_session.flush()
        for i, name in enumerate(names):
            tag_id = f"et_{gid}_{i}"
            db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=tag_id, group_pk=group.id, name=name,
                               deleted_at=dt.datetime(2026, 1, 1, tzinfo=UTC) if name == "C类" else None))
            made.tags[name] = tag_id
    db_session.flush()
    add_customer(db_session, made, "a", [("zhangsan", ["A类", "教育"], "2026-01-10T02:00:00", "active")], "意向客户")
    add_customer(db_session, made, "b", [("zhangsan", ["A类"], "2026-02-10T02:00:00", "active"),
                                         ("lisi", ["B类"], "2026-03-01T02:00:00", "active")], "成交客户")
    add_customer(db_session, made, "c", [("wangwu", ["B类", "金融"], "2026-03-05T02:00:00", "active")])
    add_customer(db_session, made, "d", [("lisi", ["教育"], "2026-01-20T02:00:00", "lost")])
    add_customer(db_session, made, "gone", [("zhangsan", ["A类"], "2026-01-01T02:00:00", "lost")])
    db_session.commit()
    return made


def token(db_session: Any, role: str, userid: str | None = None, name: str | None = None) -> dict[str, str]:
    """Authorization headers for a fresh API token."""
    from identity.service import create_api_token
    from crm.service import ensure_corp

    ensure_corp(TEST_CORP_ID)
    _, secret = create_api_token(TEST_CORP_ID, name or f"test-{role}-{userid or 'x'}", role, userid)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}
