"""The customers and chats of colleagues who left, waiting for a takeover (离职待分配).

WeCom keeps the list: `get_unassigned_list` (paged with the cursor to the end: the legacy page_id paging
stops at 50,000 rows) and `groupchat/list` with `status_filter` 1, asked for the resigned owners 100 at a
time. `refresh_waiting` reads it all first, then replaces the local copy in one transaction. It runs every
30 minutes (`handover_refresh`, locked), and on demand: the refresh button, the API, and a resignation
(`staff_resigned`) each ask for it (`request_refresh`: a `WaitingRefresh` row the page shows, and ONE
pending task, whoever asks).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, func, insert, select

from core.db import db, from_epoch, utcnow
from core.models import Task
from core.tasks import enqueue_task
from crm.models import Customer, FollowRelation, GroupChat, Staff
from crm.service import ensure_corp
from crm.sync import apply_group_chat_fields
from identity.service import Scope
from wecom.client import WeComClient, WeComError, contact_client

from .models import SUBJECT_CHAT, SUBJECT_CUSTOMER, WaitingItem, WaitingRefresh
from .planning import Candidate, ChatCandidate, chunks

log = logging.getLogger("scrm.handover")

REFRESH_TASK = "handover.refresh"
OWNERS_PER_CALL = 100  # groupchat/list owner_filter.userid_list
KEEP_REFRESHES = 50


def request_refresh(corp_id: str, actor: str, reason: str) -> WaitingRefresh:
    """Ask for a refresh (flush): the requested row the page shows, and the task that does it (one at a time)."""
    row = pending_refresh(corp_id)
    if row is None:
        row = WaitingRefresh(corp_id=corp_id, status="requested", reason=reason, requested_by=actor,
                             requested_at=utcnow())
        db.session.add(row)
        db.session.flush()
    enqueue_task(corp_id, REFRESH_TASK, {"refresh_id": row.id}, dedupe_key=REFRESH_TASK)
    return row


def pending_refresh(corp_id: str) -> WaitingRefresh | None:
    return db.session.scalar(select(WaitingRefresh).where(WaitingRefresh.corp_id == corp_id,
                                                          WaitingRefresh.status == "requested")
                             .order_by(WaitingRefresh.id.desc()).limit(1))


def last_refresh(corp_id: str) -> WaitingRefresh | None:
    """The latest refresh that ended (done or failed)."""
    return db.session.scalar(select(WaitingRefresh).where(WaitingRefresh.corp_id == corp_id,
                                                          WaitingRefresh.status != "requested")
                             .order_by(WaitingRefresh.id.desc()).limit(1))


def run_refresh_task(task: Task) -> None:
    """The `handover.refresh` task: skipped when a refresh already answered the request meanwhile."""
    row = db.session.get(WaitingRefresh, int((task.payload or {}).get("refresh_id") or 0))
    if row is not None and row.status != "requested":
        return
    refresh_waiting(task.corp_id, contact_client(), reason=row.reason if row is not None else "manual")


def read_waiting(corp_id: str, client: WeComClient) -> tuple[list[dict[str, Any]], dict[str, str],
                                                                   dict[str, dict[str, Any]]]:
    """What WeCom says waits: the unassigned customers, {chat_id: owner} of resigned owners' chats (status 1),
    and the details of the chats this product does not know yet. Only reads."""
    known_resigned = set(db.session.scalars(select(Staff.userid).where(Staff.corp_id == corp_id,
                                                                       Staff.status == "resigned")))
    customers = list(client.iter_unassigned())
    owners = sorted(known_resigned | {str(r.get("handover_userid")) for r in customers})
    chats: dict[str, str] = {}
    unknown: list[str] = []
    for part in chunks(owners, OWNERS_PER_CALL):
        listed = [str(c["chat_id"]) for c in client.iter_groupchats(status_filter=1, owner_userids=list(part))]
        if len(part) == 1:
            chats.update({c: part[0] for c in listed})
            continue
        local = dict(db.session.execute(select(GroupChat.chat_id, GroupChat.owner_userid).where(
            GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(listed))).tuples().all()) if listed else {}
        for chat_id in listed:
            if local.get(chat_id) in part:
                chats[chat_id] = str(local[chat_id])
            else:
                unknown.append(chat_id)
    details = {}
    for chat_id in unknown:  # chats we never synced: their owner (and name) from groupchat/get
        data = client.get_groupchat(chat_id)
        details[chat_id] = data
        chats[chat_id] = str(data.get("owner") or "")
    return customers, chats, details


def refresh_waiting(corp_id: str, client: WeComClient, *, reason: str = "schedule", actor: str = "") -> WaitingRefresh:
    """Read WeCom's waiting list, then replace the local copy (flush); the refresh row it ends.

    A transient WeCom error raises (the task or job is retried); a permanent one is recorded on the row."""
    started = utcnow()
    try:
        customers, chats, details = read_waiting(corp_id, client)
    except WeComError as exc:
        if exc.transient:
            raise
        row = _ending_row(corp_id, reason, actor)
        row.status, row.finished_at = "failed", utcnow()
        row.error = f"企业微信拒绝了读取（错误码 {exc.errcode}）：{exc.errmsg}"[:500]
        log.warning("handover.refresh.failed errcode=%s", exc.errcode)
        return row
    ensure_corp(corp_id)
    now = utcnow()
    db.session.execute(delete(WaitingItem).where(WaitingItem.corp_id == corp_id))
    rows = [{"corp_id": corp_id, "subject": SUBJECT_CUSTOMER, "handover_userid": str(r["handover_userid"]),
             "target": str(r["external_userid"]), "dimission_at": from_epoch(r.get("dimission_time")), "seen_at": now}
            for r in {(r["handover_userid"], r["external_userid"]): r for r in customers}.values()]
    dimission = {row["handover_userid"]: row["dimission_at"] for row in rows}
    rows += [{"corp_id": corp_id, "subject": SUBJECT_CHAT, "handover_userid": owner, "target": chat_id,
              "dimission_at": dimission.get(owner), "seen_at": now} for chat_id, owner in chats.items() if owner]
    for part in chunks(rows, 1000):
        db.session.execute(insert(WaitingItem), list(part))
    _learn_chats(corp_id, details, now)
    row = _ending_row(corp_id, reason, actor)
    row.status, row.finished_at, row.error = "done", now, None
    row.counts = {"customers": sum(1 for r in rows if r["subject"] == SUBJECT_CUSTOMER),
                  "chats": sum(1 for r in rows if r["subject"] == SUBJECT_CHAT),
                  "staff": len({r["handover_userid"] for r in rows}), "seconds": round((now - started).total_seconds(), 1)}
    _trim(corp_id)
    db.session.flush()
    log.info("handover.refreshed counts=%s", row.counts)
    return row


def _ending_row(corp_id: str, reason: str, actor: str) -> WaitingRefresh:
    """The requested row this refresh answers, or a new one (a scheduled run nobody asked for)."""
    row = pending_refresh(corp_id)
    if row is None:
        row = WaitingRefresh(corp_id=corp_id, reason=reason, requested_by=actor, requested_at=utcnow())
        db.session.add(row)
    return row


def _learn_chats(corp_id: str, details: dict[str, dict[str, Any]], now: Any) -> None:
    """Chats WeCom listed that we had never synced are stored (name, owner, members) like crm's sync does."""
    for chat_id, data in details.items():
        chat = db.session.scalar(select(GroupChat).where(GroupChat.corp_id == corp_id, GroupChat.chat_id == chat_id))
        if chat is None:
            chat = GroupChat(corp_id=corp_id, chat_id=chat_id)
            db.session.add(chat)
        apply_group_chat_fields(chat, data, 1, now)


def _trim(corp_id: str) -> None:
    """Keep the latest refreshes only (the page shows the last one)."""
    db.session.flush()
    oldest = db.session.scalar(select(WaitingRefresh.id).where(WaitingRefresh.corp_id == corp_id)
                               .order_by(WaitingRefresh.id.desc()).offset(KEEP_REFRESHES - 1).limit(1))
    if oldest:
        db.session.execute(delete(WaitingRefresh).where(WaitingRefresh.corp_id == corp_id,
                                                        WaitingRefresh.id < oldest))


# ---------------------------------------------------------------- reading the local copy


def waiting_staff(corp_id: str, scope: Scope) -> list[dict[str, Any]]:
    """The colleagues who left with customers or chats waiting: name, when they left, how many; newest first."""
    people: dict[str, dict[str, Any]] = {}
    for userid, subject, n, left in db.session.execute(
            select(WaitingItem.handover_userid, WaitingItem.subject, func.count(), func.max(WaitingItem.dimission_at))
            .where(WaitingItem.corp_id == corp_id).group_by(WaitingItem.handover_userid, WaitingItem.subject)).tuples():
        if not scope.allows(userid):
            continue
        person = people.setdefault(userid, {"userid": userid, "customers": 0, "chats": 0, "dimission_at": None})
        person["customers" if subject == SUBJECT_CUSTOMER else "chats"] += int(n)
        person["dimission_at"] = person["dimission_at"] or left
    staff = {s.userid: s for s in db.session.scalars(select(Staff).where(Staff.corp_id == corp_id,
                                                                          Staff.userid.in_(sorted(people))))}
    for userid, person in people.items():
        member = staff.get(userid)
        person["name"] = (member.name if member is not None else "") or userid
        person["dimission_at"] = person["dimission_at"] or (member.resigned_at if member is not None else None)
    return sorted(people.values(), key=lambda p: (p["dimission_at"] is None, -(p["dimission_at"].timestamp()
                                                                                 if p["dimission_at"] else 0),
                                                  p["userid"]))


def waiting_customers(corp_id: str, handover_userid: str) -> list[Candidate]:
    """The person's waiting customers, with what this product knows of them (name, the relation)."""
    rows = db.session.execute(
        select(WaitingItem.target, Customer.id, Customer.name, FollowRelation.id, FollowRelation.remark)
        .outerjoin(Customer, (Customer.corp_id == WaitingItem.corp_id) & (Customer.external_userid == WaitingItem.target))
        .outerjoin(FollowRelation, (FollowRelation.customer_id == Customer.id)
                   & (FollowRelation.userid == WaitingItem.handover_userid))
        .where(WaitingItem.corp_id == corp_id, WaitingItem.subject == SUBJECT_CUSTOMER,
               WaitingItem.handover_userid == handover_userid).order_by(WaitingItem.id)).tuples()
    return [Candidate(ext, cid, rid, name or remark or "") for ext, cid, name, rid, remark in rows]


def waiting_chats(corp_id: str, handover_userid: str) -> list[ChatCandidate]:
    rows = db.session.execute(
        select(WaitingItem.target, GroupChat.name)
        .outerjoin(GroupChat, (GroupChat.corp_id == WaitingItem.corp_id) & (GroupChat.chat_id == WaitingItem.target))
        .where(WaitingItem.corp_id == corp_id, WaitingItem.subject == SUBJECT_CHAT,
               WaitingItem.handover_userid == handover_userid).order_by(WaitingItem.id)).tuples()
    return [ChatCandidate(chat_id, name or "") for chat_id, name in rows]


def is_waiting(corp_id: str, handover_userid: str) -> bool:
    return db.session.scalar(select(WaitingItem.id).where(WaitingItem.corp_id == corp_id,
                                                          WaitingItem.handover_userid == handover_userid).limit(1)) is not None
