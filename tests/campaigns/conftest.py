"""Fixtures for the campaign tests: a corp built straight into the emulator's state AND the local database
(the same staff, customers, relations and tags on both sides, as a sync would leave them, in a second
instead of minutes), a worker that sends the outbox at once, and sign-in helpers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable

import pytest
from sqlalchemy import insert, select, text

from core.db import utcnow
from crm.handlers import apply_tag_groups
from crm.models import Customer, FollowRelation, FollowUp, Staff, Tag, TagAssignment
from crm.service import ensure_corp
from crm.worker import Worker, drain
from identity.service import Principal
from tagging.segments import facets
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client
from wecom.emulator.state import Customer as EmuCustomer
from wecom.models import OutboxCommand

UTC = dt.timezone.utc


@dataclass
class Person:
    """A customer to build: who follows them, with which tags, added when (epoch seconds)."""

    name: str
    follows: list[tuple[str, list[str], int]]  # (userid, tag names, added at)
    ext: str = ""


@dataclass
class Corp:
    emu: Any
    tags: dict[str, str] = field(default_factory=dict)  # tag name → WeCom tag id
    ids: dict[str, int] = field(default_factory=dict)  # external_userid → customers.id
    staff: list[str] = field(default_factory=list)

    def ext(self, index: int) -> str:
        return f"wm{index:08d}AAAAAAAAAAAAAAAAAAAA"


def build(db_session: Any, emu: Any, staff: Iterable[tuple[str, str]], tag_groups: dict[str, list[str]],
          people: list[Person], *, resigned: Iterable[str] = ()) -> Corp:
    """Put the same corp in the emulator and in the local database (see module docstring)."""

    corp = Corp(emu=emu)
    st = emu.state
    for userid, name in staff:
        emu.act.add_staff(userid, name)
        corp.staff.append(userid)
    for group, names in tag_groups.items():
        _, ids = emu.act.corp_tag_group_created(group, names)
        corp.tags.update(zip(names, ids))
    with st.lock:
        for i, person in enumerate(people):
            person.ext = person.ext or corp.ext(i)
            customer = EmuCustomer(person.ext, person.name)
            st.customers[person.ext] = customer
            for userid, tag_names, added in person.follows:
                st.add_relation(userid, customer, added, tags=tuple(corp.tags[t] for t in tag_names))
    catalog = contact_client().get_corp_tag_list()  # read WeCom first, then write (SQLite: one writer)
    ensure_corp(TEST_CORP_ID)
    apply_tag_groups(TEST_CORP_ID, catalog, complete=True)
    gone = set(resigned)
    db_session.execute(insert(Staff), [{"corp_id": TEST_CORP_ID, "userid": u, "name": n, "department_ids": [1],
                                        "status": "resigned" if u in gone else "active"} for u, n in staff])
    rows = [{"corp_id": TEST_CORP_ID, "external_userid": p.ext, "name": p.name} for p in people]
    _load(db_session, Customer, rows)
    corp.ids = dict(db_session.execute(select(Customer.external_userid, Customer.id)
                                       .where(Customer.corp_id == TEST_CORP_ID)).tuples().all())
    relations = [{"corp_id": TEST_CORP_ID, "customer_id": corp.ids[p.ext], "userid": u, "status": "active",
                  "added_at": dt.datetime.fromtimestamp(added, UTC)} for p in people for u, _, added in p.follows]
    _load(db_session, FollowRelation, relations)
    rel_ids = {(c, u): r for r, c, u in db_session.execute(
        select(FollowRelation.id, FollowRelation.customer_id, FollowRelation.userid)
        .where(FollowRelation.corp_id == TEST_CORP_ID)).tuples()}
    tag_pks = dict(db_session.execute(select(Tag.tag_id, Tag.id)).tuples().all())
    assignments = [{"corp_id": TEST_CORP_ID, "relation_id": rel_ids[(corp.ids[p.ext], u)],
                    "tag_pk": tag_pks[corp.tags[t]], "customer_id": corp.ids[p.ext]}
                   for p in people for u, names, _ in p.follows for t in names]
    _load(db_session, TagAssignment, assignments)
    if facets.enabled():  # PostgreSQL: the documented bulk load, triggers off, then the facets rebuilt
        facets.rebuild(TEST_CORP_ID)
        db_session.commit()
    return corp


def _load(db_session: Any, model: Any, rows: list[dict[str, Any]], batch: int = 5000) -> None:
    """Insert a batch at a time, with PostgreSQL's triggers (the segment facets) off: see `build`."""
    for i in range(0, len(rows), batch):
        if facets.enabled():
            db_session.execute(text("SET LOCAL session_replication_role = replica"))
        db_session.execute(insert(model), rows[i:i + batch])
        db_session.commit()


def followup(db_session: Any, corp: Corp, ext: str, userid: str, days_ago: int = 1) -> None:
    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=corp.ids[ext], userid=userid, content="回访",
                            created_at=dt.datetime.now(UTC) - dt.timedelta(days=days_ago)))


def principal(role: str = "marketer", userid: str = "xiaomei") -> Any:
    return Principal(corp_id=TEST_CORP_ID, role=role, userid=userid, via="session", name=userid)


def send_all(app: Any, *, retry_base: float = 0.0) -> int:
    """Run the worker until the outbox (and the task queue) has nothing due; `retry_base` delays retries."""
    return drain(app, worker=Worker(app, retry_base=retry_base, name="test-worker"))


def due_now(db_session: Any) -> None:
    """Every pending outbox command is due now (its backoff skipped)."""
    db_session.execute(OutboxCommand.__table__.update().where(OutboxCommand.status == "pending")
                       .values(next_attempt_at=utcnow()))
    db_session.commit()


@pytest.fixture()
def small(db_session: Any, emu: Any) -> Corp:
    """Staff zhangsan, lisi, wangwu; customers c0…c5 (all tagged VIP but c5):
    c0 zhangsan; c1 zhangsan + lisi (lisi added later); c2 lisi; c3 wangwu; c4 zhangsan + wangwu; c5 lisi (普通)."""
    base = int(dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    people = [Person("客户0", [("zhangsan", ["VIP"], base)]),
              Person("客户1", [("zhangsan", ["VIP"], base), ("lisi", ["VIP"], base + 86400)]),
              Person("客户2", [("lisi", ["VIP"], base)]),
              Person("客户3", [("wangwu", ["VIP"], base)]),
              Person("客户4", [("zhangsan", ["VIP"], base + 3600), ("wangwu", [], base)]),
              Person("客户5", [("lisi", ["普通"], base)])]
    return build(db_session, emu, [("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"), ("xiaomei", "小美")],
                 {"客户等级": ["VIP", "普通"]}, people)
