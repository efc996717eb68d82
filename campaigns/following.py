"""Following campaigns to the end: polling WeCom for who confirmed and what each customer got, closing the
follow window, and reading the mass messages this product did not send (for the receive quota).

`follow_due` polls every due task: `get_groupmsg_task` (did the sender confirm?) and, once confirmed,
`get_groupmsg_send_result` for that sender, both over EVERY page (the client follows `next_cursor`; a
page size is never trusted to hold everything). Results: 1 delivered, 2 not a friend, 3 quota reached;
0 (not sent) stays "planned" until the window closes, when it becomes "unsent". A task is polled again
after 1, 2, 5, 10, 20, then every 30 minutes. A campaign is done when every task is final (sent with
every result in, failed, cancelled, expired) or when its follow window (`CampaignSettings.follow_days`
after it was sent) closes. WeCom is read with no transaction open; each task's results commit alone.

Delivered customers can be tagged (the campaign's `tag_id`): each batch of new deliveries of a sender
becomes one bulk tag job of `tagging.bulk` on that sender's relations (run by tagging's job runner).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import db, from_epoch
from core.errors import UserValueError
from crm.models import Customer, GroupChat
from crm.service import audit
from tagging.bulk.service import start_bulk_edit
from wecom.client import WeComClient, WeComError

from .models import (CANCELLED, DONE, FOLLOWING, R_CANCELLED, R_DELIVERED, R_PLANNED, R_UNSENT, SENDING,
                     T_CANCELLED, T_CANCELLING, T_CREATED, T_EXPIRED, T_FAILED, T_PENDING, T_SENT, WECOM_RESULT,
                     Campaign, CampaignRecipient, CampaignTask, ForeignMessage, ForeignReceipt)
from .planning import recipient_counts

log = logging.getLogger("scrm.campaigns")

R = CampaignRecipient
POLL_STEPS = (1, 2, 5, 10, 20, 30)  # minutes between polls of a task
POLL_BATCH = 200
CANCELLED_ERRCODE = 41093
LIST_SPAN = dt.timedelta(days=30)  # get_groupmsg_list_v2: start→end at most one month


def next_poll(polls: int, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(minutes=POLL_STEPS[min(polls, len(POLL_STEPS) - 1)])


def is_final(task: CampaignTask) -> bool:
    return task.status in (T_FAILED, T_CANCELLED, T_EXPIRED) or (task.status == T_SENT and task.complete)


# ---------------------------------------------------------------- polling tasks


def due_tasks(corp_id: str, now: dt.datetime, *, force: bool = False, limit: int = POLL_BATCH) -> list[int]:
    """Tasks whose poll is due (all open ones with `force`), the longest waiting first."""
    query = select(CampaignTask.id).where(CampaignTask.corp_id == corp_id, CampaignTask.msgid.is_not(None),
                                          CampaignTask.status.in_((T_CREATED, T_SENT, T_CANCELLING)),
                                          CampaignTask.complete.is_(False))
    if not force:
        query = query.where(CampaignTask.next_poll_at <= now)
    return list(db.session.scalars(query.order_by(CampaignTask.next_poll_at, CampaignTask.id).limit(limit)))


def read_task(client: WeComClient, msgid: str, sender: str) -> tuple[dict[str, Any] | None, bool]:
    """(the sender's row of get_groupmsg_task, cancelled?) — every page read; 41093 means cancelled."""
    row = None
    try:
        for item in client.iter_groupmsg_task(msgid):
            if item.get("userid") == sender:
                row = item
    except WeComError as exc:
        if exc.errcode != CANCELLED_ERRCODE:
            raise
        return None, True
    return row, False


def poll_task(task_id: int, now: dt.datetime, client: WeComClient) -> bool:
    """Read one task's state and results from WeCom and record them (commits); False when WeCom could not
    answer (polled again later)."""
    task = db.session.get(CampaignTask, task_id)
    if task is None or task.msgid is None:
        db.session.rollback()
        return False
    msgid, sender, chat_type = task.msgid, task.sender_userid, _chat_type(task)
    db.session.commit()  # no transaction open while WeCom is read
    try:
        row, cancelled = read_task(client, msgid, sender)
        confirmed = row is not None and int(row.get("status") or 0) != 0
        results = list(client.iter_groupmsg_send_result(msgid, sender)) if confirmed or cancelled else []
    except WeComError as exc:
        log.warning("campaigns.poll.failed task=%s msgid=%s errcode=%s", task_id, msgid, exc.errcode)
        task = db.session.get(CampaignTask, task_id)
        if task is not None:
            task.polls, task.polled_at = task.polls + 1, now
            task.next_poll_at = next_poll(task.polls, now)
            task.error = f"查询企业微信失败（{exc.errcode}），稍后重试"
        db.session.commit()
        return False
    task = db.session.get(CampaignTask, task_id)
    if task is None:
        db.session.rollback()
        return False
    apply_poll(task, chat_type, row, cancelled, results, now)
    db.session.commit()
    return True


def _chat_type(task: CampaignTask) -> str:
    return str(db.session.scalar(select(Campaign.chat_type).where(Campaign.id == task.campaign_id)))


def apply_poll(task: CampaignTask, chat_type: str, row: dict[str, Any] | None, cancelled: bool,
               results: list[dict[str, Any]], now: dt.datetime) -> None:
    """Record what WeCom said about a task: confirmation, per-recipient results, cancellation (flushes)."""
    delivered = apply_results(task, chat_type, results)
    sent = (row is not None and int(row.get("status") or 0) != 0) or any(int(r.get("status") or 0) for r in results)
    if sent:
        task.status = T_SENT
        if task.confirmed_at is None:
            task.confirmed_at = from_epoch((row or {}).get("send_time")) or now
    if cancelled:
        _close(task, R_CANCELLED, T_SENT if sent else T_CANCELLED)
    else:
        task.complete = sent and not _waiting(task)
    task.polls, task.polled_at, task.error = task.polls + 1, now, None
    task.next_poll_at = None if is_final(task) else next_poll(task.polls, now)
    if delivered:
        tag_delivered(task, delivered)


def apply_results(task: CampaignTask, chat_type: str, results: list[dict[str, Any]]) -> list[str]:
    """Update the task's recipients from send_result rows (1/2/3; 0 leaves them planned); the targets
    newly delivered."""
    key = "external_userid" if chat_type == "single" else "chat_id"
    reported = {str(r[key]): (int(r.get("status") or 0), r.get("send_time")) for r in results if r.get(key)}
    if not reported:
        return []
    ours = {target: (pk, status) for pk, target, status in db.session.execute(
        select(R.target_pk, R.target, R.status).where(R.campaign_id == task.campaign_id,
                                                      R.sender_userid == task.sender_userid,
                                                      R.target_pk >= task.first_pk, R.target_pk <= task.last_pk))}
    changes: list[dict[str, Any]] = []
    delivered: list[str] = []
    for target, (code, when) in reported.items():
        new = WECOM_RESULT.get(code)
        if new is None or target not in ours or ours[target][1] == new:
            continue
        changes.append({"b_pk": ours[target][0], "b_status": new,
                        "b_at": from_epoch(when) if new == R_DELIVERED else None})
        if new == R_DELIVERED:
            delivered.append(target)
    if changes:
        table = cast(Table, R.__table__)
        db.session.execute(update(table).where(table.c.campaign_id == task.campaign_id,
                                               table.c.target_pk == bindparam("b_pk"))
                           .values(status=bindparam("b_status"), sent_at=bindparam("b_at")), changes)
    return delivered


def _task_rows(task: CampaignTask) -> list[Any]:
    return [R.campaign_id == task.campaign_id, R.sender_userid == task.sender_userid,
            R.target_pk >= task.first_pk, R.target_pk <= task.last_pk]


def _waiting(task: CampaignTask) -> int:
    return int(db.session.scalar(select(func.count()).select_from(R).where(*_task_rows(task),
                                                                           R.status == R_PLANNED)) or 0)


def _close(task: CampaignTask, recipients: str, status: str) -> None:
    """End a task: its recipients still planned become `recipients`; the task `status`, complete."""
    db.session.execute(update(R).where(*_task_rows(task), R.status == R_PLANNED).values(status=recipients)
                       .execution_options(synchronize_session=False))
    task.status, task.complete, task.next_poll_at = status, True, None


def tag_delivered(task: CampaignTask, targets: list[str]) -> None:
    """Tag newly delivered customers with the campaign's tag, on the sender's relation (a bulk tag job)."""
    campaign = db.session.get(Campaign, task.campaign_id)
    if campaign is None or not campaign.tag_id or campaign.chat_type != "single":
        return
    try:
        start_bulk_edit(campaign.corp_id, f"campaign:{campaign.id}", add=[campaign.tag_id], remove=[],
                        external_userids=targets, userid=task.sender_userid)
    except UserValueError as exc:  # the tag was deleted meanwhile: say so on the campaign, keep following
        campaign.error = f"无法给已送达客户打标签：{exc.message}"
        log.info("campaigns.tag.refused campaign=%s error=%s", campaign.id, exc.message)


# ---------------------------------------------------------------- closing campaigns


def finish_campaigns(corp_id: str, now: dt.datetime, touched: set[int] | None = None) -> int:
    """Close campaigns whose every task is final, or whose follow window has closed (commits); how many.
    The stored counts (the list page's) are refreshed for the campaigns in `touched` (all when None)."""
    closed = 0
    ids = list(db.session.scalars(select(Campaign.id).where(
        Campaign.corp_id == corp_id, Campaign.status.in_((SENDING, FOLLOWING, CANCELLED)),
        Campaign.planned_at.is_not(None), Campaign.finished_at.is_(None))))
    for campaign_id in ids:
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None
        closed += finish(campaign, now, refresh=touched is None or campaign_id in touched)
        db.session.commit()
    return closed


def finish(campaign: Campaign, now: dt.datetime, *, refresh: bool = True) -> bool:
    """Close the campaign if it is over (flushes); its counts are refreshed when asked, and when it closes."""
    tasks = list(db.session.scalars(select(CampaignTask).where(CampaignTask.campaign_id == campaign.id)))
    if refresh:
        campaign.counts = recipient_counts(campaign.id)
    if any(t.status == T_PENDING for t in tasks):
        return False
    window_closed = campaign.follow_until is not None and now >= campaign.follow_until
    open_tasks = [t for t in tasks if not is_final(t)]
    if open_tasks and not window_closed:
        return False
    for task in open_tasks:
        if task.status == T_CANCELLING or (campaign.status == CANCELLED and task.status == T_CREATED):
            _close(task, R_CANCELLED, T_CANCELLED)
        elif task.status == T_CREATED:
            _close(task, R_UNSENT, T_EXPIRED)
        else:
            _close(task, R_UNSENT, task.status)
    if campaign.status != CANCELLED:
        campaign.status = DONE
    campaign.finished_at = now
    campaign.counts = recipient_counts(campaign.id)
    audit(campaign.corp_id, "system", "campaign.finish", "campaign", str(campaign.id),
          {"status": campaign.status, "window_closed": window_closed, "counts": campaign.counts})
    log.info("campaigns.finished id=%s status=%s", campaign.id, campaign.status)
    return True


def follow_due(corp_id: str, now: dt.datetime, client: WeComClient, *, force: bool = False) -> int:
    """Poll every due task (all open ones with `force`), then close what is over; how many tasks were read."""
    ids = due_tasks(corp_id, now, force=force)
    touched = set(db.session.scalars(select(CampaignTask.campaign_id).where(CampaignTask.id.in_(ids)))) if ids else set()
    db.session.commit()
    read = sum(1 for task_id in ids if poll_task(task_id, now, client))
    finish_campaigns(corp_id, now, touched)
    return read


# ---------------------------------------------------------------- mass messages we did not send


def scan_foreign(corp_id: str, since: dt.datetime, now: dt.datetime, client: WeComClient) -> int:
    """Read WeCom's mass messages since `since` (at most a month back) that are not ours and record who
    received them, so the receive quota counts them (commits); how many messages were read."""
    start = max(since, now - LIST_SPAN + dt.timedelta(minutes=1))
    ours = set(db.session.scalars(select(CampaignTask.msgid).where(CampaignTask.corp_id == corp_id,
                                                                   CampaignTask.msgid.is_not(None),
                                                                   CampaignTask.created_at >= start - LIST_SPAN)))
    done = set(db.session.scalars(select(ForeignMessage.msgid).where(ForeignMessage.corp_id == corp_id,
                                                                     ForeignMessage.final.is_(True))))
    db.session.commit()
    found: list[tuple[str, dict[str, Any], list[tuple[str, int]], bool]] = []
    for chat_type in ("single", "group"):
        for msg in client.iter_groupmsg_list(chat_type, int(start.timestamp()), int(now.timestamp()), filter_type=2):
            msgid = str(msg.get("msgid") or "")
            if not msgid or msgid in ours or msgid in done:
                continue
            receipts, final = _receipts(client, msgid, chat_type)
            found.append((chat_type, msg, receipts, final))
    for chat_type, msg, receipts, final in found:
        _record_foreign(corp_id, chat_type, msg, receipts, final, now)
    db.session.commit()
    return len(found)


def _receipts(client: WeComClient, msgid: str, chat_type: str) -> tuple[list[tuple[str, int]], bool]:
    """(target, send_time) of everyone who received the message, and whether every task was sent."""
    key = "external_userid" if chat_type == "single" else "chat_id"
    try:
        tasks = list(client.iter_groupmsg_task(msgid))
    except WeComError as exc:
        if exc.errcode != CANCELLED_ERRCODE:
            raise
        return [], True
    out: list[tuple[str, int]] = []
    for task in tasks:
        if int(task.get("status") or 0) == 0:
            continue
        for row in client.iter_groupmsg_send_result(msgid, str(task.get("userid"))):
            if int(row.get("status") or 0) == 1 and row.get(key):
                out.append((str(row[key]), int(row.get("send_time") or task.get("send_time") or 0)))
    return out, all(int(t.get("status") or 0) != 0 for t in tasks)


def _insert_ignore() -> Any:
    return pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _record_foreign(corp_id: str, chat_type: str, msg: dict[str, Any], receipts: list[tuple[str, int]],
                    final: bool, now: dt.datetime) -> None:
    msgid = str(msg["msgid"])
    insert = _insert_ignore()
    db.session.execute(insert(ForeignMessage).values(
        corp_id=corp_id, msgid=msgid, chat_type=chat_type, create_type=int(msg.get("create_type") or 0),
        creator=msg.get("creator"), created_at=from_epoch(msg.get("create_time")) or now, final=final,
        checked_at=now).on_conflict_do_update(index_elements=["corp_id", "msgid"],
                                              set_={"final": final, "checked_at": now}))
    if not receipts:
        return
    model = Customer if chat_type == "single" else GroupChat
    column = Customer.external_userid if chat_type == "single" else GroupChat.chat_id
    targets = sorted({t for t, _ in receipts})
    pks: dict[str, int] = {}
    for i in range(0, len(targets), 500):
        pks.update(db.session.execute(select(column, model.id).where(model.corp_id == corp_id,
                                                                     column.in_(targets[i:i + 500]))).tuples().all())
    rows = [{"corp_id": corp_id, "msgid": msgid, "chat_type": chat_type, "target": t, "target_pk": pks.get(t),
             "sent_at": from_epoch(when) or now} for t, when in receipts]
    for i in range(0, len(rows), 1000):
        db.session.execute(insert(ForeignReceipt).values(rows[i:i + 1000])
                           .on_conflict_do_nothing(index_elements=["corp_id", "msgid", "target"]))


def forget_foreign(corp_id: str, msgid: str) -> None:
    """A message read as foreign turned out to be ours (its answer was reconciled later): drop it (flushes)."""
    db.session.execute(delete(ForeignReceipt).where(ForeignReceipt.corp_id == corp_id, ForeignReceipt.msgid == msgid))
    db.session.execute(delete(ForeignMessage).where(ForeignMessage.corp_id == corp_id, ForeignMessage.msgid == msgid))
