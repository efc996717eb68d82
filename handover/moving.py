"""What moves with a customer once WeCom says the takeover is done, written set-based.

- The person handing over keeps their relation in the history, marked lost with reason "transferred" (for
  an on-job handover crm does it when the `del_external_contact` with DELETE_BY_TRANSFER arrives; a resigned
  member gets no such callback, and a sync may have marked the relation lost "sync" meanwhile: both become
  "transferred", which the figures never count as a loss).
- The takeover colleague has the customer at once in the sidebar: their relation is created from the old one
  (remark, description, channel) or reactivated (they had the customer before); the `add_external_contact`
  WeCom sends afterwards is applied by crm as usual and corrects it with WeCom's own values.
- A follow-up note on the customer, written as the takeover colleague, says who handed the customer to whom
  and when (the customer's earlier follow-ups are per customer: they stay visible to the new colleague).
- Tags: the old relation's corp tags that the takeover's relation lacks are re-applied through the outbox
  (`tagging.assignments.change_relation_tags`). Where WeCom creates the takeover's relation it reports it with
  the tags it carried: the check then waits for that `add_external_contact` (`on_customer_added`); where the
  colleague already had the customer, WeCom sends no add and the check is made at once.

A relation is only written here through `FollowRelation`'s own columns (crm's table, the same rules as
crm's handlers): handover sits above crm and the move must be set-based (a job of 10,000 customers).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import db
from core.errors import UserValueError
from core.time import china_date
from crm.models import FollowRelation, FollowUp, Tag, TagAssignment
from tagging.assignments.service import change_relation_tags

from .models import C_DONE, RESIGNED, TAGS_DONE, TAGS_WAITING, HandoverCustomer
from .planning import chunks

log = logging.getLogger("scrm.handover")

ACTOR = "handover"
ADD_WAY_ASSIGNED = 202  # add_way: 管理员/负责人分配 (what WeCom reports for a customer given by a handover)
KIND_WORDS = {RESIGNED: "离职继承", "onjob": "在职转接"}


@dataclass
class Done:
    """A customer WeCom says the takeover colleague has now."""

    item_id: int
    job_id: int
    kind: str
    customer_id: int | None
    external_userid: str
    from_relation_id: int | None
    handover_userid: str
    takeover_userid: str
    takeover_at: dt.datetime
    tags_state: str
    noted: bool


def note_text(kind: str, handover_name: str, takeover_name: str, at: dt.datetime) -> str:
    """The follow-up note the takeover colleague finds on the customer."""
    return f"客户由 {handover_name} 转接给 {takeover_name}（{KIND_WORDS.get(kind, '客户交接')}，{china_date(at)} 完成）"


def complete(corp_id: str, done: list[Done], names: dict[str, str], now: dt.datetime) -> None:
    """Mark the items done and move what moves with each customer (see the module docstring); flushes."""
    if not done:
        return
    db.session.execute(update(HandoverCustomer), [
        {"id": d.item_id, "status": C_DONE, "takeover_at": d.takeover_at, "finished_at": now, "errcode": None,
         "reason": None, "noted": d.noted or d.customer_id is not None} for d in done])
    known = [d for d in done if d.customer_id is not None]
    release_old(corp_id, [d.from_relation_id for d in known if d.from_relation_id], now)
    had = takeover_relations(corp_id, [d.customer_id for d in known if d.customer_id is not None])
    before = {d.item_id: had.get((d.customer_id or 0, d.takeover_userid)) for d in known}
    _give(corp_id, [d for d in known if before[d.item_id] is None], now)
    _reactivate([(rel[0], d.takeover_at) for d in known if (rel := before[d.item_id]) is not None and rel[1] != "active"])
    write_notes(corp_id, [d for d in known if not d.noted], names, now)
    for d in known:  # the colleague had the customer already: WeCom sends no add, check the tags now
        rel = before[d.item_id]
        if d.tags_state == TAGS_WAITING and d.from_relation_id and rel is not None and rel[1] == "active":
            reapply_tags(corp_id, d.item_id, d.from_relation_id, rel[0], d.job_id)
    db.session.flush()


def release_old(corp_id: str, relation_ids: list[int], now: dt.datetime) -> None:
    """The old relations stay as history, lost because transferred (see the module docstring)."""
    for part in chunks(relation_ids):
        db.session.execute(update(FollowRelation).where(
            FollowRelation.id.in_(list(part)),
            or_(FollowRelation.status == "active", FollowRelation.lost_reason.is_(None),
                FollowRelation.lost_reason == "sync"))
            .values(status="lost", lost_at=now, lost_reason="transferred").execution_options(synchronize_session=False))


def takeover_relations(corp_id: str, customer_ids: list[int]) -> dict[tuple[int, str], tuple[int, str]]:
    """(customer, userid) → (relation id, status) for every relation of these customers."""
    found: dict[tuple[int, str], tuple[int, str]] = {}
    for part in chunks(sorted(set(customer_ids))):
        for rid, cid, userid, status in db.session.execute(
                select(FollowRelation.id, FollowRelation.customer_id, FollowRelation.userid, FollowRelation.status)
                .where(FollowRelation.corp_id == corp_id, FollowRelation.customer_id.in_(list(part)))).tuples():
            found[(cid, userid)] = (rid, status)
    return found


def _give(corp_id: str, done: list[Done], now: dt.datetime) -> None:
    """New relations of the takeover colleagues, made from the old ones (a concurrent add wins)."""
    if not done:
        return
    old: dict[int, Any] = {}
    for part in chunks([d.from_relation_id for d in done if d.from_relation_id]):
        for row in db.session.execute(select(FollowRelation.id, FollowRelation.remark, FollowRelation.description,
                                             FollowRelation.remark_corp_name, FollowRelation.remark_mobiles,
                                             FollowRelation.state).where(FollowRelation.id.in_(list(part)))):
            old[row.id] = row
    rows = []
    for d in done:
        o = old.get(d.from_relation_id or 0)
        rows.append({"corp_id": corp_id, "customer_id": d.customer_id, "userid": d.takeover_userid,
                     "remark": o.remark if o else "", "description": o.description if o else "",
                     "remark_corp_name": o.remark_corp_name if o else "",
                     "remark_mobiles": list(o.remark_mobiles or []) if o else [], "state": o.state if o else "",
                     "added_at": d.takeover_at, "add_way": ADD_WAY_ASSIGNED, "oper_userid": d.handover_userid,
                     "status": "active", "created_at": now})
    dialect = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for part in chunks(rows):
        db.session.execute(dialect(FollowRelation).values(list(part)).on_conflict_do_nothing(
            index_elements=["corp_id", "customer_id", "userid"]))


def _reactivate(rows: list[tuple[int, dt.datetime]]) -> None:
    """Relations the colleague had before (lost, or transferred away earlier) are theirs again."""
    if rows:
        db.session.execute(update(FollowRelation), [
            {"id": rid, "status": "active", "lost_at": None, "lost_reason": None, "added_at": at} for rid, at in rows])


def write_notes(corp_id: str, done: list[Done], names: dict[str, str], now: dt.datetime) -> None:
    """One follow-up note per customer, by the takeover colleague, dated when the takeover happened."""
    rows = [{"corp_id": corp_id, "customer_id": d.customer_id, "userid": d.takeover_userid,
             "content": note_text(d.kind, names.get(d.handover_userid, d.handover_userid),
                                  names.get(d.takeover_userid, d.takeover_userid), d.takeover_at),
             "created_at": min(d.takeover_at, now)} for d in done if d.customer_id is not None]
    for part in chunks(rows, 1000):
        db.session.execute(insert(FollowUp), list(part))


def live_tag_ids(relation_ids: list[int]) -> dict[int, set[str]]:
    """WeCom tag ids (not deleted) on each relation."""
    found: dict[int, set[str]] = {rid: set() for rid in relation_ids}
    for part in chunks(relation_ids):
        for rid, tag_id in db.session.execute(
                select(TagAssignment.relation_id, Tag.tag_id).join(Tag, Tag.id == TagAssignment.tag_pk)
                .where(TagAssignment.relation_id.in_(list(part)), Tag.deleted_at.is_(None))).tuples():
            found[rid].add(tag_id)
    return found


def reapply_tags(corp_id: str, item_id: int, from_relation_id: int, to_relation_id: int, job_id: int) -> int:
    """Re-apply, through the outbox, the old relation's tags the takeover's relation lacks; how many."""
    tags = live_tag_ids([from_relation_id, to_relation_id])
    missing = sorted(tags[from_relation_id] - tags[to_relation_id])
    db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id == item_id).values(tags_state=TAGS_DONE)
                       .execution_options(synchronize_session=False))
    relation = db.session.get(FollowRelation, to_relation_id)
    if not missing or relation is None or relation.status != "active":
        return 0
    try:
        change_relation_tags(corp_id, relation, missing, [], ACTOR, "handover", detail={"handover_job_id": job_id})
    except UserValueError as exc:  # a tag deleted meanwhile: nothing to carry over
        log.info("handover.tags-skipped item=%s reason=%s", item_id, exc.message)
        return 0
    return len(missing)


def stale_tag_checks(corp_id: str, before: dt.datetime, limit: int = 500) -> int:
    """Done customers whose takeover add never arrived (a lost callback): check their tags on the local
    relation after all; how many were checked."""
    rows = db.session.execute(select(HandoverCustomer.id, HandoverCustomer.job_id, HandoverCustomer.customer_id,
                                     HandoverCustomer.from_relation_id, HandoverCustomer.takeover_userid).where(
        HandoverCustomer.corp_id == corp_id, HandoverCustomer.status == C_DONE,
        HandoverCustomer.tags_state == TAGS_WAITING, HandoverCustomer.finished_at < before).limit(limit)).all()
    for item_id, job_id, customer_id, from_id, takeover in rows:
        rid = db.session.scalar(select(FollowRelation.id).where(FollowRelation.customer_id == customer_id,
                                                                FollowRelation.userid == takeover))
        if rid is None or from_id is None:
            db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id == item_id)
                               .values(tags_state=TAGS_DONE).execution_options(synchronize_session=False))
            continue
        reapply_tags(corp_id, item_id, from_id, rid, job_id)
    return len(rows)
