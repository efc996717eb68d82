"""Following every customer of a job to its end: WeCom's results, its callbacks, and a safety net.

- `poll_due` (the `handover_poll` job, every 3 minutes): for each (kind, handover, takeover) pair with
  customers waiting whose takeover time has come, page `transfer_result` (or `resigned/transfer_result`) with
  the cursor ONCE and move each customer to its state: 1 done (and what moves with it, `moving.complete`),
  2 still waiting (its new takeover time), 3 refused, 4 takeover at the limit, 5 no record. A pair costs
  ⌈its customers / 1000⌉ calls; nothing is read while nothing is due.
- Callbacks, through crm's domain signals: `transfer_fail` finalizes a customer at once (refused, or the
  takeover at the limit); the `del_external_contact` with DELETE_BY_TRANSFER (`relation_lost`, reason
  "transferred") is matched to its job and completes the customer (never a loss); the takeover's
  `add_external_contact` (`customer_added`) is when the tags WeCom did not carry are re-applied.
- `mend`: commands answered whose after-hook could not run (the items still say queued) are applied again,
  jobs with nothing open are ended, tags whose add never came are checked on the local relation.

Everything here is idempotent: a customer only moves out of queued/waiting once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from core.db import db, from_epoch, transaction_memo, utcnow
from core.signals import CustomerAdded, RelationLost, StaffResigned, TransferFailed
from crm.models import Customer, FollowRelation
from wecom.client import WeComClient
from wecom.models import OutboxCommand

from . import moving
from .models import (C_DONE, C_LIMIT, C_NO_RECORD, C_QUEUED, C_REFUSED, C_WAITING, OPEN_CUSTOMER, RUNNING,
                     TAGS_DONE, TAGS_WAITING, WECOM_STATUS, H_QUEUED, HandoverChat, HandoverCustomer, HandoverJob)
from .sending import (CHATS, CUSTOMERS, staff_names, on_chats_done, on_chats_failed, on_customers_done,
                      on_customers_failed, settle)
from .waiting import request_refresh

log = logging.getLogger("scrm.handover")

STILL_WAITING_BACKOFF = dt.timedelta(minutes=15)  # WeCom still says 2 after the takeover time: ask again later
TAGS_GRACE = dt.timedelta(hours=1)  # how long a done customer's tags wait for the takeover's add event
FAIL_REASONS = {"customer_refused": (C_REFUSED, "refused"), "customer_limit_exceed": (C_LIMIT, "takeover_limit")}


# ---------------------------------------------------------------- polling transfer_result


def due_pairs(corp_id: str, now: dt.datetime, force: bool = False) -> list[tuple[str, str, str]]:
    """(kind, handover, takeover) pairs with a waiting customer whose takeover time has come."""
    query = (select(HandoverJob.kind, HandoverJob.handover_userid, HandoverCustomer.takeover_userid)
             .join(HandoverJob, HandoverJob.id == HandoverCustomer.job_id)
             .where(HandoverCustomer.corp_id == corp_id, HandoverCustomer.status == C_WAITING)
             .group_by(HandoverJob.kind, HandoverJob.handover_userid, HandoverCustomer.takeover_userid))
    if not force:
        query = query.having(func.min(HandoverCustomer.poll_after) <= now)
    return [(k, h, str(t)) for k, h, t in db.session.execute(query).tuples()]


def poll_due(corp_id: str, now: dt.datetime, client: WeComClient, *, force: bool = False) -> int:
    """Read WeCom's results of every due pair and apply them, one commit per pair; how many pairs were read.
    `force` reads every pair with a waiting customer (the CLI's --all, tests that advance WeCom's clock)."""
    pairs = due_pairs(corp_id, now, force)
    db.session.rollback()  # nothing is held while WeCom is read
    for kind, handover, takeover in pairs:
        iterate = client.iter_transfer_result if kind == "onjob" else client.iter_resigned_transfer_result
        records = {str(r.get("external_userid")): r for r in iterate(handover, takeover)}
        apply_results(corp_id, kind, handover, takeover, records, now, force=force)
        db.session.commit()
    return len(pairs)


def apply_results(corp_id: str, kind: str, handover: str, takeover: str, records: dict[str, Any],
                  now: dt.datetime, *, force: bool = False) -> None:
    """Move each waiting customer of the pair to what WeCom's latest record says (see the module docstring)."""
    rows = db.session.execute(
        select(HandoverCustomer, HandoverJob.kind).join(HandoverJob, HandoverJob.id == HandoverCustomer.job_id)
        .where(HandoverCustomer.corp_id == corp_id, HandoverCustomer.status == C_WAITING,
               HandoverCustomer.takeover_userid == takeover, HandoverJob.kind == kind,
               HandoverJob.handover_userid == handover)).tuples().all()
    done: list[moving.Done] = []
    finals: dict[tuple[str, str], list[int]] = {}
    waiting: list[dict[str, Any]] = []
    for item, _ in rows:
        record = records.get(item.external_userid)
        status = WECOM_STATUS.get(int(record.get("status") or 0)) if record else None
        at = from_epoch(record.get("takeover_time")) if record else None
        if status == C_DONE:
            done.append(_done(item, kind, handover, at or now))
        elif status == C_WAITING:
            later = max(at or now, now + STILL_WAITING_BACKOFF) if (at is None or at <= now) else at
            waiting.append({"id": item.id, "takeover_at": at or item.takeover_at, "poll_after": later})
        elif status in (C_REFUSED, C_LIMIT, C_NO_RECORD):
            finals.setdefault((status, {C_REFUSED: "refused", C_LIMIT: "takeover_limit"}.get(status, "no_record")),
                              []).append(item.id)
        elif force or (item.poll_after is not None and item.poll_after <= now):
            finals.setdefault((C_NO_RECORD, "no_record"), []).append(item.id)  # WeCom has no record of it at all
    if waiting:
        db.session.execute(update(HandoverCustomer), waiting)
    for (status, reason), ids in finals.items():
        db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_(ids))
                           .values(status=status, reason=reason, finished_at=now)
                           .execution_options(synchronize_session=False))
    moving.complete(corp_id, done, staff_names(corp_id, [handover, takeover]), now)
    for job in {item.job_id for item, _ in rows}:
        _settle(job, now)
    log.info("handover.polled pair=%s/%s/%s done=%s final=%s waiting=%s", kind, handover, takeover, len(done),
             sum(len(v) for v in finals.values()), len(waiting))


def _done(item: HandoverCustomer, kind: str, handover: str, at: dt.datetime) -> moving.Done:
    return moving.Done(item.id, item.job_id, kind, item.customer_id, item.external_userid, item.from_relation_id,
                       handover, str(item.takeover_userid), at, item.tags_state, item.noted)


def _settle(job_id: int, now: dt.datetime) -> None:
    job = db.session.get(HandoverJob, job_id)
    if job is not None:
        settle(job, now)


# ---------------------------------------------------------------- callbacks (crm's domain signals)


def on_transfer_failed(event: TransferFailed) -> None:
    """transfer_fail: the customer refused, or the takeover is at WeCom's limit: final at once."""
    status, reason = FAIL_REASONS.get(event.reason, (C_REFUSED, "refused"))
    items = db.session.execute(select(HandoverCustomer.id, HandoverCustomer.job_id).where(
        HandoverCustomer.corp_id == event.corp_id, HandoverCustomer.external_userid == event.external_userid,
        HandoverCustomer.status.in_(OPEN_CUSTOMER), HandoverCustomer.takeover_userid == event.takeover_userid)).all()
    if not items:
        return
    now = utcnow()
    db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_([i for i, _ in items]))
                       .values(status=status, reason=reason, finished_at=now)
                       .execution_options(synchronize_session=False))
    for job_id in {j for _, j in items}:
        _settle(job_id, now)


def _open_items(corp_id: str, customer_id: int, statuses: tuple[str, ...]) -> list[tuple[HandoverCustomer, HandoverJob]]:
    ext = db.session.scalar(select(Customer.external_userid).where(Customer.id == customer_id))
    if ext is None:
        return []
    return list(db.session.execute(
        select(HandoverCustomer, HandoverJob).join(HandoverJob, HandoverJob.id == HandoverCustomer.job_id)
        .where(HandoverCustomer.corp_id == corp_id, HandoverCustomer.external_userid == ext,
               HandoverCustomer.status.in_(statuses))).tuples())


def on_relation_lost(event: RelationLost) -> None:
    """The handover member's relation ended by transfer (DELETE_BY_TRANSFER): the customer is taken over."""
    if event.reason != "transferred":
        return
    now = utcnow()
    found = [(item, job) for item, job in _open_items(event.corp_id, event.customer_id, OPEN_CUSTOMER)
             if job.handover_userid == event.userid]
    if not found:
        return
    for item, _ in found:
        item.customer_id = item.customer_id or event.customer_id
    done = [_done(item, job.kind, job.handover_userid, now) for item, job in found]
    moving.complete(event.corp_id, done, staff_names(event.corp_id, [event.userid, *(str(d.takeover_userid) for d in done)]),
                    now)
    for job_id in {item.job_id for item, _ in found}:
        _settle(job_id, now)


AWAITING_KEY = "scrm.handover.awaiting_add"


def _awaiting_add(corp_id: str) -> set[int]:
    """The customers (ids) of this corp with a handover item still waiting for the takeover's add
    (tags to re-apply or the note to write). Asked once per transaction: a burst of a hundred adds
    costs one query here, not two each (and no flush of the burst's rows one at a time)."""
    remembered = transaction_memo(AWAITING_KEY)
    if corp_id not in remembered:
        remembered[corp_id] = set(db.session.scalars(
            select(Customer.id).join(HandoverCustomer, and_(HandoverCustomer.corp_id == Customer.corp_id,
                                                            HandoverCustomer.external_userid == Customer.external_userid))
            .where(HandoverCustomer.corp_id == corp_id, HandoverCustomer.status.in_((C_WAITING, C_DONE)),
                   or_(HandoverCustomer.tags_state == TAGS_WAITING, HandoverCustomer.noted.is_(False)))))
    found: set[int] = remembered[corp_id]
    return found


def on_customer_added(event: CustomerAdded) -> None:
    """The takeover's add_external_contact: WeCom reported the new relation with the tags it carried; the
    old relation's tags it lacks are re-applied, and a customer new to us gets its handover note."""
    if event.customer_id not in _awaiting_add(event.corp_id):
        return
    found = [(item, job) for item, job in _open_items(event.corp_id, event.customer_id, (C_WAITING, C_DONE))
             if item.takeover_userid == event.userid and (item.tags_state == TAGS_WAITING or not item.noted)]
    for item, job in found:
        if item.customer_id is None:
            item.customer_id = event.customer_id
            item.from_relation_id = item.from_relation_id or db.session.scalar(select(FollowRelation.id).where(
                FollowRelation.customer_id == event.customer_id, FollowRelation.userid == job.handover_userid))
        if item.tags_state == TAGS_WAITING:
            if item.from_relation_id:
                moving.reapply_tags(event.corp_id, item.id, item.from_relation_id, event.relation_id, job.id)
            else:
                item.tags_state = TAGS_DONE
        if item.status == C_DONE and not item.noted:
            item.noted = True
            moving.write_notes(event.corp_id, [_done(item, job.kind, job.handover_userid,
                                                     item.takeover_at or utcnow())],
                               staff_names(event.corp_id, [job.handover_userid, event.userid]), utcnow())


def on_staff_resigned(event: StaffResigned) -> None:
    """A colleague left: their customers and chats will wait for a takeover; read WeCom's list (a task)."""
    request_refresh(event.corp_id, "wecom", "resigned")


# ---------------------------------------------------------------- the safety net


def mend(corp_id: str, now: dt.datetime) -> dict[str, int]:
    """Apply answers whose after-hook did not run, end jobs with nothing open, check tags whose add never
    came; how many of each."""
    hooks = {(CUSTOMERS, "done"): on_customers_done, (CUSTOMERS, "failed"): on_customers_failed,
             (CHATS, "done"): on_chats_done, (CHATS, "failed"): on_chats_failed}
    stuck = set(db.session.scalars(select(HandoverCustomer.command_id).where(
        HandoverCustomer.corp_id == corp_id, HandoverCustomer.status == C_QUEUED).distinct()))
    stuck |= set(db.session.scalars(select(HandoverChat.command_id).where(
        HandoverChat.corp_id == corp_id, HandoverChat.status == H_QUEUED).distinct()))
    answered = [c for c in db.session.scalars(select(OutboxCommand).where(
        OutboxCommand.id.in_([i for i in stuck if i]), OutboxCommand.status.in_(("done", "failed"))))]
    for command in answered:
        log.warning("handover.mend command=%s status=%s (its after-hook had not run)", command.id, command.status)
        hooks[(command.kind, command.status)](command)
    ended = 0
    for job in db.session.scalars(select(HandoverJob).where(HandoverJob.corp_id == corp_id,
                                                            HandoverJob.status == RUNNING)):
        settle(job, now)
        ended += job.status != RUNNING
    tags = moving.stale_tag_checks(corp_id, now - TAGS_GRACE)
    return {"commands": len(answered), "jobs_ended": ended, "tags_checked": tags}
