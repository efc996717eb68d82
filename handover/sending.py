"""Sending a handover to WeCom, exactly once, and what each answer does.

A job is written in ONE transaction (`write_job`): its row, one item per customer and chat (cannot move, or
queued), and ONE outbox command per call of ≤100 customers of one (handover, takeover) pair (kind
`handover_customers`: `transfer_customer` or `resigned_transfer_customer`) or ≤100 chats of one new owner
(kind `handover_chats`: `groupchat_onjob_transfer` or `groupchat_transfer`). A crash before the commit
leaves nothing; after it, the outbox sends each command once.

The outbox commits `sending_at` before a transfer goes out. When WeCom's answer is lost (a timeout, a 5xx, a
worker killed between WeCom's answer and our commit), the next attempt asks `reconcile_customers`, which
READS `transfer_result` for the pair: a customer with a record started after the command's first attempt was
sent. None sent → the command is sent again; otherwise it is done with the reconstructed answer and the
customers not sent are queued again as a new command of the same job (`on_customers_done`). Chats are
reconciled the same way through `groupchat/list` (the new owner's chats).

`on_customers_done` records each customer's errcode: 0 = WeCom started the 24 h transfer (waiting, logged
for the 90-day rule); anything else failed with the reason. `settle` keeps the job's counts and, when every
customer and chat is final, ends it and tells the takeover colleagues and the manager (app messages).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any, Iterable

from flask import Flask
from sqlalchemy import delete, func, insert, select, update

from core.db import db, utcnow
from core.settings import settings
from crm.models import GroupChat, Staff, TagAssignment
from crm.service import audit
from wecom.client import WeComClient
from wecom.dispatch import CommandView, Reconciled, register_outbox_hooks, register_reconciler
from wecom.models import OutboxCommand
from wecom.service import UNKNOWN_OUTCOME, enqueue

from .models import (C_EXCLUDED, C_FAILED, C_QUEUED, C_WAITING, DONE, H_DONE, H_EXCLUDED, H_FAILED, H_QUEUED, ONJOB,
                     OPEN_CUSTOMER, RESIGNED, RUNNING, SUBJECT_CHAT, SUBJECT_CUSTOMER, TAGS_NONE, TAGS_WAITING,
                     HandoverChat, HandoverCustomer, HandoverJob, TransferLog, WaitingItem)
from .planning import Plan, chunks

log = logging.getLogger("scrm.handover")

CUSTOMERS, CHATS, NOTIFY = "handover_customers", "handover_chats", "handover_notify"
TAKEOVER_DELAY = dt.timedelta(hours=24)  # WeCom takes the customer over 24 h after the transfer starts
# A record counts as this command's when it started no earlier than the first attempt minus this margin
# (the two clocks may differ a little).
CLOCK_MARGIN = dt.timedelta(minutes=5)
# WeCom may still be working on a call whose answer we lost: "nothing found" means "send again" only once
# the first attempt is this old; before that the reconciler answers "retry" (the outbox asks again later).
RECONCILE_SETTLE = dt.timedelta(seconds=30)
ACTOR = "handover"


def customer_method(kind: str) -> str:
    return "transfer_customer" if kind == ONJOB else "resigned_transfer_customer"


def chat_method(kind: str) -> str:
    return "groupchat_onjob_transfer" if kind == ONJOB else "groupchat_transfer"


# ---------------------------------------------------------------- writing a job


def write_job(job: HandoverJob, result: Plan) -> None:
    """A planned job's items and commands, in the caller's transaction (flush): see the module docstring."""
    now = utcnow()
    tagged = _tagged_relations([m.relation_id for m in result.moves if m.relation_id])
    rows: list[dict[str, Any]] = []
    for takeover, indices in result.batches:
        moves = [result.moves[i] for i in indices]
        command = enqueue_customers(job, takeover, [m.external_userid for m in moves])
        rows += [_item(job, m.external_userid, m.customer_id, m.relation_id, takeover, C_QUEUED, now,
                       command_id=command.id, tags=TAGS_WAITING if m.relation_id in tagged else TAGS_NONE)
                 for m in moves]
    rows += [_item(job, s.external_userid, s.customer_id, s.relation_id, s.takeover, C_EXCLUDED, now, reason=s.reason)
             for s in result.skips]
    for part in chunks(rows, 1000):
        db.session.execute(insert(HandoverCustomer), list(part))
    chats: list[dict[str, Any]] = []
    for owner, indices in result.chat_batches:
        moves_ = [result.chat_moves[i] for i in indices]
        command = enqueue_chats(job, owner, [m.chat_id for m in moves_])
        chats += [{"corp_id": job.corp_id, "job_id": job.id, "chat_id": m.chat_id, "name": m.name[:128],
                   "new_owner": owner, "status": H_QUEUED, "command_id": command.id, "attempts": 1} for m in moves_]
    chats += [{"corp_id": job.corp_id, "job_id": job.id, "chat_id": s.chat_id, "name": s.name[:128],
               "new_owner": s.new_owner, "status": H_EXCLUDED, "reason": s.reason, "attempts": 0}
              for s in result.chat_skips]
    if chats:
        db.session.execute(insert(HandoverChat), chats)
    forget_waiting(job.corp_id, job.handover_userid, [m.external_userid for m in result.moves],
                   [m.chat_id for m in result.chat_moves])
    db.session.flush()


def _item(job: HandoverJob, ext: str, customer_id: int | None, relation_id: int | None, takeover: str | None,
          status: str, now: dt.datetime, *, command_id: int | None = None, reason: str | None = None,
          tags: str = TAGS_NONE) -> dict[str, Any]:
    return {"corp_id": job.corp_id, "job_id": job.id, "external_userid": ext, "customer_id": customer_id,
            "from_relation_id": relation_id, "takeover_userid": takeover, "status": status, "reason": reason,
            "command_id": command_id, "attempts": 1 if status == C_QUEUED else 0, "tags_state": tags,
            "noted": False, "finished_at": now if status == C_EXCLUDED else None}


def _tagged_relations(relation_ids: list[int]) -> set[int]:
    """Which of these relations carry corp tags (their tags must be found on the takeover's relation)."""
    found: set[int] = set()
    for part in chunks(relation_ids):
        found.update(db.session.scalars(select(TagAssignment.relation_id).where(
            TagAssignment.relation_id.in_(list(part))).distinct()))
    return found


def forget_waiting(corp_id: str, handover_userid: str, exts: list[str], chat_ids: list[str]) -> None:
    """Customers and chats now on their way are no longer waiting (WeCom lists them again if refused)."""
    for subject, targets in ((SUBJECT_CUSTOMER, exts), (SUBJECT_CHAT, chat_ids)):
        for part in chunks(targets):
            db.session.execute(delete(WaitingItem).where(
                WaitingItem.corp_id == corp_id, WaitingItem.subject == subject,
                WaitingItem.handover_userid == handover_userid, WaitingItem.target.in_(list(part))))


def enqueue_customers(job: HandoverJob, takeover: str, exts: list[str]) -> OutboxCommand:
    """ONE outbox command for ≤100 customers of the job's person to `takeover` (flush)."""
    args: dict[str, Any] = {"handover_userid": job.handover_userid, "takeover_userid": takeover,
                            "external_userids": list(exts), "job_id": job.id}
    if job.kind == ONJOB and job.notice:
        args["transfer_success_msg"] = job.notice
    return enqueue(job.corp_id, CUSTOMERS, customer_method(job.kind), args)


def enqueue_chats(job: HandoverJob, owner: str, chat_ids: list[str]) -> OutboxCommand:
    """ONE outbox command for ≤100 chats of the job's person to `owner` (flush)."""
    return enqueue(job.corp_id, CHATS, chat_method(job.kind),
                   {"chat_ids": list(chat_ids), "new_owner": owner, "job_id": job.id})


# ---------------------------------------------------------------- WeCom's answers


def _job(command: OutboxCommand) -> HandoverJob | None:
    return db.session.get(HandoverJob, int((command.args or {}).get("job_id") or 0))


def _answer(result: Any) -> tuple[dict[str, int], list[str]]:
    """(errcode per customer, customers not sent) of a transfer answer or a reconciled one."""
    if isinstance(result, dict):
        rows, unsent = result.get("customer") or [], [str(e) for e in result.get("unsent") or []]
    else:
        rows, unsent = result if isinstance(result, list) else [], []
    return {str(r.get("external_userid")): int(r.get("errcode") or 0) for r in rows if isinstance(r, dict)}, unsent


def on_customers_done(command: OutboxCommand) -> None:
    """WeCom answered a transfer call: 0 = waiting for the 24 h; other codes failed; unsent queued again."""
    job = _job(command)
    if job is None:
        return
    now = command.done_at or utcnow()
    codes, unsent = _answer(command.result)
    items = list(db.session.execute(select(HandoverCustomer.id, HandoverCustomer.external_userid).where(
        HandoverCustomer.job_id == job.id, HandoverCustomer.command_id == command.id,
        HandoverCustomer.status == C_QUEUED)).tuples())
    args = command.args or {}
    started = [(i, e) for i, e in items if codes.get(e) == 0]
    again = [(i, e) for i, e in items if e in unsent or e not in codes]
    failed: dict[int, list[int]] = {}
    for i, e in items:
        if codes.get(e) not in (0, None) and e not in unsent:
            failed.setdefault(codes[e], []).append(i)
    _start(job, [i for i, _ in started], now)
    log_transfers(job, SUBJECT_CUSTOMER, [e for _, e in started], str(args.get("takeover_userid")), now)
    for code, ids in failed.items():
        _finish_items(ids, C_FAILED, now, reason=str(code), errcode=code)
    if again:
        requeue(job, str(args.get("takeover_userid")), again)
    settle(job, now)


def _start(job: HandoverJob, ids: list[int], now: dt.datetime) -> None:
    due = now + TAKEOVER_DELAY
    for part in chunks(ids):
        db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_(list(part)))
                           .values(status=C_WAITING, started_at=now, takeover_at=due, poll_after=due, errcode=None,
                                   reason=None).execution_options(synchronize_session=False))


def _finish_items(ids: list[int], status: str, now: dt.datetime, *, reason: str | None,
                  errcode: int | None = None) -> None:
    for part in chunks(ids):
        db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_(list(part)))
                           .values(status=status, finished_at=now, reason=reason, errcode=errcode)
                           .execution_options(synchronize_session=False))


def requeue(job: HandoverJob, takeover: str, items: list[tuple[int, str]]) -> None:
    """Customers whose call did not reach WeCom go again, in a new command of the same pair."""
    for part in chunks(items, 100):
        command = enqueue_customers(job, takeover, [e for _, e in part])
        db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_([i for i, _ in part]))
                           .values(command_id=command.id).execution_options(synchronize_session=False))
    log.info("handover.requeued job=%s takeover=%s customers=%s", job.id, takeover, len(items))


def log_transfers(job: HandoverJob, subject: str, targets: list[str], takeover: str, now: dt.datetime) -> None:
    """Transfers WeCom accepted, in the local log the 90-day and daily checks read."""
    rows = [{"corp_id": job.corp_id, "subject": subject, "target": t, "kind": job.kind,
             "handover_userid": job.handover_userid, "takeover_userid": takeover, "job_id": job.id, "started_at": now}
            for t in targets]
    for part in chunks(rows, 1000):
        db.session.execute(insert(TransferLog), list(part))


def on_customers_failed(command: OutboxCommand) -> None:
    """The whole call failed (the takeover inactive, no permission, 40097, or an outcome we could not learn)."""
    job = _job(command)
    if job is None:
        return
    now = command.done_at or utcnow()
    unknown = UNKNOWN_OUTCOME in (command.last_error or "")
    reason = "unknown" if unknown else str(command.last_errcode) if command.last_errcode is not None else "error"
    ids = list(db.session.scalars(select(HandoverCustomer.id).where(
        HandoverCustomer.job_id == job.id, HandoverCustomer.command_id == command.id,
        HandoverCustomer.status == C_QUEUED)))
    _finish_items(ids, C_FAILED, now, reason=reason, errcode=command.last_errcode)
    audit(job.corp_id, ACTOR, "handover.call_failed", "handover_job", str(job.id),
          {"command_id": command.id, "errcode": command.last_errcode, "error": command.last_error,
           "customers": len(ids)})
    settle(job, now)


def _chat_answer(result: Any) -> tuple[dict[str, int], list[str]]:
    if isinstance(result, dict):
        rows, unsent = result.get("failed_chat_list") or [], [str(c) for c in result.get("unsent") or []]
    else:
        rows, unsent = result if isinstance(result, list) else [], []
    return {str(r.get("chat_id")): int(r.get("errcode") or 0) for r in rows if isinstance(r, dict)}, unsent


def on_chats_done(command: OutboxCommand) -> None:
    """WeCom answered a chat call: chats in failed_chat_list failed with their code, the rest moved."""
    job = _job(command)
    if job is None:
        return
    now = command.done_at or utcnow()
    failed, unsent = _chat_answer(command.result)
    owner = str((command.args or {}).get("new_owner"))
    rows = list(db.session.execute(select(HandoverChat.id, HandoverChat.chat_id).where(
        HandoverChat.job_id == job.id, HandoverChat.command_id == command.id, HandoverChat.status == H_QUEUED)).tuples())
    moved = [(i, c) for i, c in rows if c not in failed and c not in unsent]
    for i, c in rows:
        if c in failed:
            db.session.execute(update(HandoverChat).where(HandoverChat.id == i).values(
                status=H_FAILED, errcode=failed[c], reason=str(failed[c]), finished_at=now))
    if moved:
        db.session.execute(update(HandoverChat).where(HandoverChat.id.in_([i for i, _ in moved])).values(
            status=H_DONE, finished_at=now, errcode=None, reason=None).execution_options(synchronize_session=False))
        db.session.execute(update(GroupChat).where(GroupChat.corp_id == job.corp_id,
                                                   GroupChat.chat_id.in_([c for _, c in moved]))
                           .values(owner_userid=owner, status=3 if job.kind == RESIGNED else 0)
                           .execution_options(synchronize_session=False))
        log_transfers(job, SUBJECT_CHAT, [c for _, c in moved], owner, now)
    again = [(i, c) for i, c in rows if c in unsent]
    if again:
        command_ = enqueue_chats(job, owner, [c for _, c in again])
        db.session.execute(update(HandoverChat).where(HandoverChat.id.in_([i for i, _ in again]))
                           .values(command_id=command_.id).execution_options(synchronize_session=False))
    settle(job, now)


def on_chats_failed(command: OutboxCommand) -> None:
    job = _job(command)
    if job is None:
        return
    now = command.done_at or utcnow()
    unknown = UNKNOWN_OUTCOME in (command.last_error or "")
    db.session.execute(update(HandoverChat).where(
        HandoverChat.job_id == job.id, HandoverChat.command_id == command.id, HandoverChat.status == H_QUEUED)
        .values(status=H_FAILED, errcode=command.last_errcode, finished_at=now,
                reason="unknown" if unknown else str(command.last_errcode or "error"))
        .execution_options(synchronize_session=False))
    settle(job, now)


# ---------------------------------------------------------------- reconciling a lost answer


def attributable(status: int, takeover_time: int, first: dt.datetime, transferred_before: bool) -> bool:
    """Whether a `transfer_result` record is the one a command's first attempt started.

    Waiting (2): its takeover time is the start + 24 h. Done (1): taken over after the first attempt. Refused,
    limit, no record (3, 4, 5 carry no time): ours unless this customer went to this colleague before (then
    the record may be the older one, and the customer is sent again: at worst a second transfer notice)."""
    since = first - CLOCK_MARGIN
    if status == 2:
        return dt.datetime.fromtimestamp(takeover_time, dt.timezone.utc) - TAKEOVER_DELAY >= since
    if status == 1:
        return takeover_time > 0 and dt.datetime.fromtimestamp(takeover_time, dt.timezone.utc) >= since
    return not transferred_before


def reconcile_customers(view: CommandView, client: WeComClient) -> Reconciled:
    """A transfer call whose answer was lost: which of its customers WeCom started (see `attributable`)."""
    args = view.args
    handover, takeover = str(args.get("handover_userid")), str(args.get("takeover_userid"))
    exts = [str(e) for e in args.get("external_userids") or []]
    first = view.sending_at or view.created_at
    before = set(db.session.scalars(select(TransferLog.target).where(
        TransferLog.corp_id == view.corp_id, TransferLog.subject == SUBJECT_CUSTOMER,
        TransferLog.handover_userid == handover, TransferLog.takeover_userid == takeover,
        TransferLog.target.in_(exts))))
    db.session.rollback()  # no transaction stays open while WeCom is read
    pages = (client.iter_transfer_result if view.method == "transfer_customer"
             else client.iter_resigned_transfer_result)(handover, takeover)
    records = {str(r.get("external_userid")): r for r in pages}
    sent = [e for e in exts if e in records and attributable(
        int(records[e].get("status") or 0), int(records[e].get("takeover_time") or 0), first, e in before)]
    if not sent:
        if utcnow() - first < RECONCILE_SETTLE:
            return Reconciled("retry", error="WeCom lists none of these transfers yet; asking again before resending")
        return Reconciled("resend")
    unsent = [e for e in exts if e not in set(sent)]
    log.info("handover.reconciled command=%s sent=%s unsent=%s", view.id, len(sent), len(unsent))
    return Reconciled("done", result={"customer": [{"external_userid": e, "errcode": 0} for e in sent],
                                      "unsent": unsent, "reconciled": True})


def reconcile_chats(view: CommandView, client: WeComClient) -> Reconciled:
    """A chat call whose answer was lost: the chats the new owner now owns moved; the rest were not sent."""
    chat_ids = [str(c) for c in view.args.get("chat_ids") or []]
    owner = str(view.args.get("new_owner"))
    first = view.sending_at or view.created_at
    db.session.rollback()
    owned = {str(c.get("chat_id")) for c in client.iter_groupchats(owner_userids=[owner])}
    moved = [c for c in chat_ids if c in owned]
    if not moved:
        if utcnow() - first < RECONCILE_SETTLE:
            return Reconciled("retry", error="the new owner owns none of these chats yet; asking again")
        return Reconciled("resend")
    return Reconciled("done", result={"failed_chat_list": [], "unsent": [c for c in chat_ids if c not in owned],
                                      "reconciled": True})


# ---------------------------------------------------------------- the job's counts and its end


def counts_of(job: HandoverJob) -> dict[str, Any]:
    """Customers and chats per status, what is still open, and the progress in percent."""
    customers = dict(db.session.execute(select(HandoverCustomer.status, func.count()).where(
        HandoverCustomer.job_id == job.id).group_by(HandoverCustomer.status)).tuples().all())
    chats = dict(db.session.execute(select(HandoverChat.status, func.count()).where(
        HandoverChat.job_id == job.id).group_by(HandoverChat.status)).tuples().all())
    total = sum(customers.values()) + sum(chats.values())
    open_ = sum(customers.get(s, 0) for s in OPEN_CUSTOMER) + chats.get(H_QUEUED, 0)
    return {"customers": {k: int(v) for k, v in customers.items()}, "chats": {k: int(v) for k, v in chats.items()},
            "customers_total": sum(customers.values()), "chats_total": sum(chats.values()), "total": total,
            "open": open_, "final": total - open_, "percent": 100 if not total else (total - open_) * 100 // total}


def settle(job: HandoverJob, now: dt.datetime | None = None) -> None:
    """Keep the job's counts; end it (and tell the colleagues) when nothing is open any more."""
    now = now or utcnow()
    db.session.flush()
    job.counts = counts_of(job)
    job.updated_at = now
    if job.counts["open"] == 0 and job.status == RUNNING:
        job.status, job.finished_at = DONE, now
        audit(job.corp_id, ACTOR, "handover.finished", "handover_job", str(job.id),
              {"round": job.round, "customers": job.counts["customers"], "chats": job.counts["chats"]})
        notify(job)
        log.info("handover.finished job=%s counts=%s", job.id, job.counts)


def staff_names(corp_id: str, userids: Iterable[str]) -> dict[str, str]:
    rows = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id,
                                                                     Staff.userid.in_(sorted(set(userids)))))
    return {u: n or u for u, n in rows}


def notify(job: HandoverJob) -> None:
    """App messages when a job ends: each takeover colleague (what they received), and the manager who
    started it (the outcome and where to see it)."""
    conf = settings()
    if not conf.WECOM_AGENT_ID.isdigit():
        log.warning("handover.no-agent-id: cannot tell anyone that job %s ended", job.id)
        return
    got: Counter[str] = Counter({str(u): int(n) for u, n in db.session.execute(
        select(HandoverCustomer.takeover_userid, func.count()).where(
            HandoverCustomer.job_id == job.id, HandoverCustomer.status == "done")
        .group_by(HandoverCustomer.takeover_userid)).tuples()})
    chats: Counter[str] = Counter({str(u): int(n) for u, n in db.session.execute(
        select(HandoverChat.new_owner, func.count()).where(
            HandoverChat.job_id == job.id, HandoverChat.status == H_DONE).group_by(HandoverChat.new_owner)).tuples()})
    creator = job.creator_userid or ""
    names = staff_names(job.corp_id, [job.handover_userid, *got, *chats, *([creator] if creator else [])])
    who = names.get(job.handover_userid, job.handover_userid)
    for userid in sorted(set(got) | set(chats)):
        parts = [f"{got[userid]} 位客户"] if got[userid] else []
        parts += [f"{chats[userid]} 个客户群"] if chats[userid] else []
        text = (f"【客户交接】{who}的{'和'.join(parts)}已转接给您，之前的跟进记录都已保留，"
                f"可在聊天工具栏的客户资料中查看。")
        _message(job, userid, text)
    if creator:
        c, h = job.counts.get("customers", {}), job.counts.get("chats", {})
        problems = sum(c.get(s, 0) for s in ("refused", "limit", "no_record", "failed", "excluded"))
        text = (f"【客户交接完成】{who}的客户交接已结束：{c.get('done', 0)} 位客户已接替"
                + (f"，{problems} 位未能转接" if problems else "")
                + (f"；{h.get(H_DONE, 0)} 个客户群已转接" if job.counts.get("chats_total") else "")
                + (f"，{h.get(H_FAILED, 0) + h.get(H_EXCLUDED, 0)} 个未能转接" if h.get(H_FAILED) or h.get(H_EXCLUDED) else "")
                + f"。详情：{conf.SCRM_PUBLIC_URL.rstrip('/')}/console/handover/{job.id}")
        _message(job, creator, text)


def _message(job: HandoverJob, userid: str, text: str) -> None:
    enqueue(job.corp_id, NOTIFY, "send_app_message",
            {"agentid": int(settings().WECOM_AGENT_ID), "touser": [userid], "text": text},
            dedupe_key=f"handover:{job.id}:r{job.round}:notify:{userid}")


def register_hooks(app: Flask) -> None:
    register_outbox_hooks(app, CUSTOMERS, on_done=on_customers_done, on_failed=on_customers_failed)
    register_reconciler(app, CUSTOMERS, reconcile_customers)
    register_outbox_hooks(app, CHATS, on_done=on_chats_done, on_failed=on_chats_failed)
    register_reconciler(app, CHATS, reconcile_chats)
