"""Sending a campaign at its time, exactly once, and what happens to its tasks afterwards.

`dispatch_due` (the `campaigns_send` job, every 30 s, locked) takes each campaign whose send time has come:

1. scheduled → planning (committed), the audience read NOW (`planning.audience_of`);
2. the lost customers, then the decisions chunk by chunk (`planning.plan_chunk`), each chunk one commit
   that also moves `plan_cursor`: a crash resumes at the next chunk, and the unique (campaign, customer)
   key makes a repeated chunk fail loudly instead of planning a customer twice;
3. the media the attachments need uploaded to WeCom if missing or old (no transaction open);
4. in ONE transaction: the tasks (each sender's recipients cut every 10,000, `planning.task_ranges`), ONE
   outbox command per task (kind `campaign_send`, `add_msg_template`, dedupe key per task), status sending.

The outbox never sends an `add_msg_template` twice: it commits `sending_at` first, and when WeCom's answer is
lost `reconcile_send` reads `get_groupmsg_list_v2` (corp-created messages around the first attempt) with
`get_groupmsg_task` and `get_groupmsg_send_result` to find the message: found → done with its msgid; not
found → sent again. `on_send_done` records the msgid and the fail_list and, once all of a sender's tasks are
answered, sends the sender an app message saying what to confirm.

Cancel: before sending nothing is sent; pending commands are withdrawn from the outbox when no worker holds
them; messages WeCom already made are cancelled (`cancel_groupmsg_send`). Remind: every unconfirmed
message, at most 3 times in 24 h (refused here before WeCom is called; WeCom's 41094 is recorded).
"""

from __future__ import annotations

import datetime as dt
import logging
from bisect import bisect_left
from typing import Any, Iterator

from flask import Flask
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by

from core.db import db, rowcount, utcnow
from core.errors import Conflict, UserValueError
from core.settings import settings
from core.time import china_datetime
from crm.models import Staff
from crm.service import audit
from wecom.client import WeComClient, WeComError
from wecom.dispatch import CommandView, Reconciled, register_outbox_hooks, register_reconciler
from wecom.models import OutboxCommand
from wecom.service import enqueue, withdraw

from . import media
from .following import forget_foreign, next_poll, read_task, scan_foreign
from .models import (CANCELLED, DONE, FAILED, FOLLOWING, PLANNING, R_CANCELLED, R_FAILED, R_PLANNED, SCHEDULED,
                     SENDING, T_CANCELLED, T_CANCELLING, T_CREATED, T_FAILED, T_PENDING, Campaign,
                     CampaignRecipient, CampaignReminder, CampaignTask)
from . import planning
from .planning import (Audience, audience_members, audience_of, chunks, corp_settings, id_bounds, open_campaign_ids,
                       plan_chunk, plan_lost, quota_window, recipient_counts, resolves_once, task_ranges)

log = logging.getLogger("scrm.campaigns")

R = CampaignRecipient
SEND, CANCEL, REMIND, NOTIFY = "campaign_send", "campaign_cancel", "campaign_remind", "campaign_notify"
MEDIA_EXPIRED = 40007
MAX_SENDS = 2  # a send refused for expired media is made once more, with new media
REMINDS_PER_DAY = 3
RECONCILE_MARGIN = dt.timedelta(minutes=30)
# WeCom may still be making a message whose answer we lost: "not found" means "resend" only once the
# first attempt is this old; before that the reconciler answers "retry" (the outbox asks again later).
RECONCILE_SETTLE = dt.timedelta(seconds=60)

# What the marketer reads when WeCom refuses a send (wecom-api.md §7.1, §10).
REFUSALS = {
    41048: "没有可发送的客户（都已不是该成员的客户）",
    40007: "附件素材已失效",
    41064: "附件太多",
    41065: "附件类型不对",
    41054: "发送成员未激活或已离职",
    60111: "发送成员不存在",
    48002: "应用没有客户联系权限",
    40058: "参数不正确",
}


def describe(errcode: int | None, error: str | None) -> str:
    if errcode in REFUSALS:
        return f"{REFUSALS[errcode]}（{errcode}）"
    if error == "expired":
        return "超时未能发出"
    return f"企业微信拒绝了此操作（{errcode if errcode is not None else error or '未知错误'}）"


# ---------------------------------------------------------------- the send job


def due_campaigns(corp_id: str, now: dt.datetime) -> list[int]:
    """Scheduled campaigns whose time has come, planning ones to resume, sending ones with a task to send
    again (its media expired), oldest first."""
    waiting = select(CampaignTask.campaign_id).where(CampaignTask.corp_id == corp_id,
                                                     CampaignTask.status == T_PENDING,
                                                     CampaignTask.command_id.is_(None))
    return list(db.session.scalars(select(Campaign.id).where(
        Campaign.corp_id == corp_id,
        or_((Campaign.status == SCHEDULED) & (Campaign.send_at <= now), Campaign.status == PLANNING,
            (Campaign.status == SENDING) & Campaign.id.in_(waiting)))
        .order_by(Campaign.send_at, Campaign.id)))


def dispatch_due(corp_id: str, now: dt.datetime, client: WeComClient) -> int:
    """Plan and send every due campaign (commits as it goes); how many were handled. One campaign that
    cannot go on now (WeCom down, a database error) is retried by the next run and never holds up the others."""
    ids = due_campaigns(corp_id, now)
    db.session.commit()
    for campaign_id in ids:
        try:
            start(campaign_id, now, client)
        except WeComError as exc:  # WeCom is down (a media upload): the next run resumes where this one stopped
            db.session.rollback()
            log.warning("campaigns.send.retry id=%s errcode=%s", campaign_id, exc.errcode)
            _note(campaign_id, f"企业微信暂时无法访问（{exc.errcode}），稍后自动重试")
        except Exception:
            db.session.rollback()
            log.exception("campaigns.send.crash id=%s (retried by the next run)", campaign_id)
            _note(campaign_id, "发送时出错，稍后自动重试；如一直出现，请联系管理员")
    return len(ids)


def _note(campaign_id: int, message: str) -> None:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is not None:
        campaign.error = message
        db.session.commit()


def start(campaign_id: int, now: dt.datetime, client: WeComClient) -> Campaign | None:
    """Take one due campaign as far as it goes: plan it, then write its tasks and commands."""
    marked = db.session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == SCHEDULED)
                                .values(status=PLANNING, planning_started_at=now, updated_at=now)
                                .execution_options(synchronize_session=False))
    if rowcount(marked):
        audit(_corp(campaign_id), "system", "campaign.planning", "campaign", str(campaign_id), {})
    db.session.commit()
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    if campaign.status == SENDING:
        resend_waiting(campaign, now, client)
        return campaign
    if campaign.status != PLANNING:
        return campaign
    conf = corp_settings(campaign.corp_id)
    try:
        audience = audience_of(campaign, now, conf)
    except UserValueError as exc:
        return _fail(campaign, f"受众条件已失效：{exc.message}", now)
    db.session.commit()
    refresh_foreign(campaign_id, conf.quota_period, now, client)
    if not plan(campaign_id, audience):
        return _drop_planned(campaign_id)
    return send(campaign_id, audience, now, client)


def refresh_foreign(campaign_id: int, period: str, now: dt.datetime, client: WeComClient) -> None:
    """Read WeCom's other mass messages of the quota period just before planning. When WeCom cannot list
    them, planning goes on with what was read before (the 10-minute scan) and says so on the campaign."""
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    corp_id = campaign.corp_id
    try:
        scan_foreign(corp_id, quota_window(period, now)[0], now, client)
    except WeComError as exc:
        db.session.rollback()
        log.warning("campaigns.scan.failed campaign=%s errcode=%s", campaign_id, exc.errcode)
        _note(campaign_id, f"未能从企业微信读取成员自行发送的群发（{exc.errcode}），接收上限按此前读取的记录计算")


def _drop_planned(campaign_id: int) -> Campaign | None:
    """A campaign cancelled while it was being planned: what a chunk planned meanwhile is cancelled too."""
    db.session.execute(update(R).where(R.campaign_id == campaign_id, R.status == R_PLANNED)
                       .values(status=R_CANCELLED).execution_options(synchronize_session=False))
    db.session.commit()
    return db.session.get(Campaign, campaign_id)


def _corp(campaign_id: int) -> str:
    return str(db.session.scalar(select(Campaign.corp_id).where(Campaign.id == campaign_id)))


def _fail(campaign: Campaign, message: str, now: dt.datetime) -> Campaign:
    campaign.status, campaign.error, campaign.finished_at = FAILED, message, now
    campaign.counts = recipient_counts(campaign.id)
    audit(campaign.corp_id, "system", "campaign.failed", "campaign", str(campaign.id), {"error": message})
    db.session.commit()
    log.info("campaigns.failed id=%s error=%s", campaign.id, message)
    return campaign


def plan(campaign_id: int, audience: Audience) -> bool:
    """Write the recipients chunk by chunk (a commit each, resumable); False when cancelled meanwhile.

    Each chunk's rows and the campaign's cursor (the next customer id to plan) and progress commit together;
    a resumed planning starts at the cursor, so no customer is planned twice (the unique (campaign,
    customer) key would refuse it). On PostgreSQL the audience is resolved once
    (`planning.audience_members`) and cut into chunks of `CHUNK` customers; elsewhere the chunks are
    ranges of customer ids, each evaluating F.
    """
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    ids = open_campaign_ids(audience)
    if campaign.plan_cursor == 0:
        lost = plan_lost(audience)
        campaign.plan_cursor = 1
        campaign.progress = {"stage": "audience", "done": 0, "total": 0, "lost": lost}
        db.session.commit()
    steps = plan_steps(audience, campaign.plan_cursor)
    done = int(campaign.progress.get("done") or 0)
    for first, end, members in steps:
        db.session.refresh(campaign)
        if campaign.status != PLANNING:
            return False
        written = plan_chunk(audience, first, end, ids, members)
        done += 1
        campaign.plan_cursor = end
        campaign.progress = {**campaign.progress, "stage": "audience", "done": done,
                             "total": done + sum(1 for s in steps if s[0] >= end)}
        db.session.commit()
        log.info("campaigns.plan.chunk id=%s range=%s-%s rows=%s", campaign_id, first, end, written)
    return True


def plan_steps(audience: Audience, cursor: int) -> list[tuple[int, int, Any]]:
    """(first id, end id, the chunk's customer ids or None) of each chunk still to plan, from `cursor` on."""
    if not resolves_once(audience):
        lo, hi = id_bounds(audience)
        return [(first, end, None) for first, end in chunks(cursor, lo, hi)]
    members = audience_members(audience)
    start = bisect_left(members, cursor)
    size = planning.CHUNK
    return [(members[i], members[min(i + size, len(members)) - 1] + 1, members[i:i + size])
            for i in range(start, len(members), size)]


def send(campaign_id: int, audience: Audience, now: dt.datetime, client: WeComClient) -> Campaign:
    """Upload the attachments' media, then write the tasks and one outbox command each, in one transaction."""
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    ranges = task_ranges(campaign_id, audience.per_call)
    counts = recipient_counts(campaign_id)
    if not ranges:
        return _fail(campaign, "没有可发送的客户：受众为空，或全部被排除（见排除原因）", now)
    try:
        attachments = _attachments(campaign, client, now)
    except WeComError as exc:
        if exc.transient:
            raise
        db.session.rollback()
        return _fail(db.session.get(Campaign, campaign_id) or campaign,
                     f"附件无法上传到企业微信（{exc.errcode} {exc.errmsg}），请检查附件后重新创建群发", now)
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    if campaign.status != PLANNING:  # cancelled while the media were uploaded
        db.session.rollback()
        return _drop_planned(campaign_id) or campaign
    conf = corp_settings(campaign.corp_id)
    tasks = [CampaignTask(corp_id=campaign.corp_id, campaign_id=campaign.id, sender_userid=sender, seq=seq,
                          first_pk=first, last_pk=last, size=size, status=T_PENDING, created_at=now)
             for sender, seq, first, last, size in ranges]
    db.session.add_all(tasks)
    db.session.flush()
    with db.session.no_autoflush:
        for task, targets in task_targets(campaign.id, tasks, audience.per_call):
            enqueue_send(campaign, task, attachments, targets)
    moved = db.session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == PLANNING)
                               .values(status=SENDING, planned_at=now, updated_at=now, error=None, counts=counts,
                                       follow_until=now + dt.timedelta(days=conf.follow_days),
                                       progress={"stage": "sending", "done": 0, "total": len(tasks)})
                               .execution_options(synchronize_session=False))
    if not rowcount(moved):  # cancelled in the meantime: none of it happened
        db.session.rollback()
        return _drop_planned(campaign_id) or campaign
    audit(campaign.corp_id, "system", "campaign.send", "campaign", str(campaign_id),
          {"tasks": len(tasks), "recipients": counts.get(R_PLANNED, 0), "excluded": counts["excluded"]})
    db.session.commit()
    log.info("campaigns.sending id=%s tasks=%s recipients=%s", campaign_id, len(tasks), counts.get(R_PLANNED, 0))
    return db.session.get(Campaign, campaign_id) or campaign


def _attachments(campaign: Campaign, client: WeComClient, now: dt.datetime,
                 force: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    stored = list(campaign.attachments or [])
    ids = media.upload_ids(stored)
    if not ids:
        return media.wecom_attachments(stored, {})
    corp_id = campaign.corp_id
    return media.wecom_attachments(stored, media.fresh_media_ids(corp_id, ids, client, now, force=force))


def task_targets(campaign_id: int, tasks: list[CampaignTask], per_call: int) -> Iterator[tuple[CampaignTask, list[str]]]:
    """Each task with its recipients' WeCom ids, from ONE query read a batch at a time (a million
    recipients never sit in memory at once). PostgreSQL aggregates each task's ids into one array (cut
    exactly as `planning.task_ranges` cuts them); elsewhere rows come per sender in id order and each
    task's range is filled in turn."""
    if db.session.get_bind().dialect.name == "postgresql":
        by_key = {(t.sender_userid, t.seq): t for t in tasks}
        for sender, seq, found in db.session.execute(task_target_arrays(campaign_id, per_call)
                                                     .execution_options(yield_per=20)):
            task = by_key.get((str(sender), int(seq)))
            if task is not None:
                yield task, list(found)
        return
    per_sender: dict[str, list[CampaignTask]] = {}
    for task in sorted(tasks, key=lambda t: t.first_pk):
        per_sender.setdefault(task.sender_userid, []).append(task)
    rows = db.session.execute(select(R.sender_userid, R.target_pk, R.target).where(
        R.campaign_id == campaign_id, R.status == R_PLANNED).order_by(R.sender_userid, R.target_pk)
        .execution_options(yield_per=TARGETS_BATCH))
    current: CampaignTask | None = None
    targets: list[str] = []
    for sender, pk, target in rows:
        if current is None or current.sender_userid != sender or pk > current.last_pk:
            if current is not None:
                yield current, targets
            queue = per_sender.get(str(sender), [])
            current, targets = (queue.pop(0) if queue else None), []
            if current is None:
                continue
        targets.append(str(target))
    if current is not None:
        yield current, targets


def task_target_arrays(campaign_id: int, per_call: int) -> Select[Any]:
    """(sender, seq, [target…]) per call, as `planning.task_ranges` numbers them (PostgreSQL: array_agg)."""
    numbered = select(R.sender_userid, R.target_pk, R.target, func.row_number().over(
        partition_by=R.sender_userid, order_by=R.target_pk).label("rn")) \
        .where(R.campaign_id == campaign_id, R.status == R_PLANNED).subquery("numbered")
    seq = ((numbered.c.rn - 1) // int(per_call)).label("seq")
    return (select(numbered.c.sender_userid, seq,
                   func.array_agg(aggregate_order_by(numbered.c.target, numbered.c.target_pk)))
            .group_by(numbered.c.sender_userid, seq))


TARGETS_BATCH = 10_000


def body_of(campaign: Campaign, task: CampaignTask, attachments: list[dict[str, Any]],
            targets: list[str] | None = None) -> dict[str, Any]:
    """The add_msg_template body of one task: its sender and its recipients (in id order)."""
    if targets is None:
        targets = list(db.session.scalars(select(R.target).where(
            R.campaign_id == campaign.id, R.sender_userid == task.sender_userid, R.status == R_PLANNED,
            R.target_pk >= task.first_pk, R.target_pk <= task.last_pk).order_by(R.target_pk)))
    body: dict[str, Any] = {"chat_type": campaign.chat_type, "sender": task.sender_userid}
    body["external_userid" if campaign.chat_type == "single" else "chat_id_list"] = targets
    if campaign.text:
        body["text"] = {"content": campaign.text}
    if attachments:
        body["attachments"] = attachments
    return body


def enqueue_send(campaign: Campaign, task: CampaignTask, attachments: list[dict[str, Any]],
                 targets: list[str] | None = None) -> OutboxCommand:
    body = body_of(campaign, task, attachments, targets)
    command = enqueue(campaign.corp_id, SEND, "add_msg_template",
                      {"body": body, "campaign_id": campaign.id, "task_id": task.id},
                      dedupe_key=f"campaign:{campaign.id}:task:{task.id}:{task.attempts}")
    task.command_id, task.attempts = command.id, task.attempts + 1
    return command


def resend_waiting(campaign: Campaign, now: dt.datetime, client: WeComClient) -> None:
    """Tasks whose send WeCom refused for expired media (40007): upload the media again, send again."""
    waiting = list(db.session.scalars(select(CampaignTask).where(CampaignTask.campaign_id == campaign.id,
                                                                 CampaignTask.status == T_PENDING,
                                                                 CampaignTask.command_id.is_(None))))
    if not waiting:
        return
    force = frozenset(media.upload_ids(list(campaign.attachments or [])))
    attachments = _attachments(campaign, client, now, force=force)
    campaign = db.session.get(Campaign, campaign.id) or campaign
    for task in db.session.scalars(select(CampaignTask).where(CampaignTask.id.in_([t.id for t in waiting]))):
        if task.status == T_PENDING and task.command_id is None:
            enqueue_send(campaign, task, attachments)
    db.session.commit()


# ---------------------------------------------------------------- outbox hooks


def _task(command: OutboxCommand) -> tuple[CampaignTask, Campaign] | None:
    task = db.session.get(CampaignTask, int((command.args or {}).get("task_id") or 0))
    if task is None:
        return None
    campaign = db.session.get(Campaign, task.campaign_id)
    assert campaign is not None
    return task, campaign


def on_send_done(command: OutboxCommand) -> None:
    """WeCom made the message: record its msgid and fail_list; cancel it if the campaign was cancelled."""
    found = _task(command)
    if found is None:
        return
    task, campaign = found
    result = command.result if isinstance(command.result, dict) else {}
    now = command.done_at or utcnow()
    task.msgid = str(result.get("msgid") or "") or None
    task.msg_created_at, task.errcode, task.error = now, None, None
    task.next_poll_at = next_poll(0, now)
    failed = [str(t) for t in result.get("fail_list") or []]
    task.fail_count = mark_failed(task, failed, "fail_list")
    task.status = T_CREATED
    if task.msgid:
        forget_foreign(campaign.corp_id, task.msgid)
    if campaign.status == CANCELLED and task.msgid:
        enqueue_cancel(campaign, task)
    advance(campaign, now)


def on_send_failed(command: OutboxCommand) -> None:
    """WeCom refused the send: media too old (40007) is sent again after a new upload; anything else fails
    the task and its recipients, with WeCom's reason."""
    found = _task(command)
    if found is None:
        return
    task, campaign = found
    now = command.done_at or utcnow()
    if command.last_errcode == MEDIA_EXPIRED and task.attempts < MAX_SENDS and campaign.status == SENDING:
        task.command_id, task.error = None, "附件素材已失效，正在重新上传后再发送"
        return
    task.status, task.errcode = T_FAILED, command.last_errcode
    task.error = describe(command.last_errcode, command.last_error)
    db.session.execute(update(R).where(R.campaign_id == task.campaign_id, R.sender_userid == task.sender_userid,
                                       R.target_pk >= task.first_pk, R.target_pk <= task.last_pk,
                                       R.status == R_PLANNED)
                       .values(status=R_FAILED, reason=str(command.last_errcode or "error")[:16])
                       .execution_options(synchronize_session=False))
    task.complete = True
    audit(campaign.corp_id, "wecom", "campaign.task_failed", "campaign", str(campaign.id),
          {"task_id": task.id, "sender": task.sender_userid, "errcode": command.last_errcode,
           "error": command.last_error})
    advance(campaign, now)


def mark_failed(task: CampaignTask, targets: list[str], reason: str) -> int:
    """Recipients WeCom would not take (its fail_list) are failed; how many of them were ours."""
    total = 0
    for i in range(0, len(targets), 500):
        result = db.session.execute(update(R).where(
            R.campaign_id == task.campaign_id, R.sender_userid == task.sender_userid,
            R.target.in_(targets[i:i + 500]), R.status == R_PLANNED).values(status=R_FAILED, reason=reason)
            .execution_options(synchronize_session=False))
        total += rowcount(result)
    return total


def advance(campaign: Campaign, now: dt.datetime) -> None:
    """After a task's answer: notify its sender when all their tasks are answered; when every task of the
    campaign is answered, the campaign is sent (or failed, when every task failed)."""
    tasks = list(db.session.scalars(select(CampaignTask).where(CampaignTask.campaign_id == campaign.id)))
    answered = [t for t in tasks if t.status != T_PENDING]
    campaign.progress = {"stage": "sending", "done": len(answered), "total": len(tasks)}
    notify_senders(campaign, tasks)
    if len(answered) < len(tasks) or campaign.status != SENDING:
        return
    campaign.sent_at = now
    if all(t.status == T_FAILED for t in tasks):
        campaign.status, campaign.finished_at = FAILED, now
        campaign.error = "所有发送任务都被企业微信拒绝：" + "；".join(sorted({t.error or "" for t in tasks}))[:500]
        campaign.counts = recipient_counts(campaign.id)
    else:
        campaign.status = FOLLOWING
    log.info("campaigns.sent id=%s status=%s", campaign.id, campaign.status)


def notify_senders(campaign: Campaign, tasks: list[CampaignTask]) -> None:
    """One app message to each sender whose tasks are all answered: how many customers to confirm, and where."""
    by_sender: dict[str, list[CampaignTask]] = {}
    for task in tasks:
        by_sender.setdefault(task.sender_userid, []).append(task)
    for sender, mine in by_sender.items():
        if any(t.status == T_PENDING for t in mine) or all(t.notified for t in mine):
            continue
        created = [t for t in mine if t.status == T_CREATED]
        for task in mine:
            task.notified = True
        if not created or campaign.status == CANCELLED:
            continue
        size = sum(t.size - t.fail_count for t in created)
        noun = "位客户" if campaign.chat_type == "single" else "个客户群"
        text = (f"【群发待确认】营销活动「{campaign.name}」请您向 {size} {noun}发送一条消息。"
                f"请打开企业微信 → 工作台 → 客户联系 → 群发助手，确认发送。")
        enqueue(campaign.corp_id, NOTIFY, "send_app_message",
                {"agentid": int(settings().WECOM_AGENT_ID), "touser": [sender], "text": text},
                dedupe_key=f"campaign:{campaign.id}:notify:{sender}")


def reconcile_send(view: CommandView, client: WeComClient) -> Reconciled:
    """An add_msg_template whose answer was lost: find the message WeCom made, or say it made none.

    Candidates: corp-created messages (filter_type 0) of the same kind, created around the first attempt,
    with the same text and attachments, not already another task's; the sender must have a task in it,
    and (customers) its recipients must be ours. The fail_list is rebuilt from the recipients listed. When
    nothing is found less than `RECONCILE_SETTLE` after the first attempt, WeCom may still be making it:
    "retry" (asked again later), never "resend" yet. Known limit: two group-chat tasks of one owner with the
    same content (over 2,000 chats) cannot be told apart before the owner confirms.
    """
    body = dict(view.args.get("body") or {})
    sender, chat_type = str(body.get("sender")), str(body.get("chat_type") or "single")
    first = view.sending_at or view.created_at
    end = utcnow() + RECONCILE_MARGIN
    begin = max(first - RECONCILE_MARGIN, end - dt.timedelta(days=30))
    claimed = set(db.session.scalars(select(CampaignTask.msgid).where(
        CampaignTask.corp_id == view.corp_id, CampaignTask.msgid.is_not(None), CampaignTask.created_at >= begin)))
    db.session.rollback()
    for msg in client.iter_groupmsg_list(chat_type, int(begin.timestamp()), int(end.timestamp()), filter_type=0):
        msgid = str(msg.get("msgid") or "")
        if not msgid or msgid in claimed or not same_content(msg, body):
            continue
        found = _match(client, msgid, sender, chat_type, body)
        if found is not None:
            return Reconciled("done", result={"msgid": msgid, "fail_list": found, "reconciled": True})
    if utcnow() - first < RECONCILE_SETTLE:
        return Reconciled("retry", error="WeCom does not list the message yet; asking again before resending")
    return Reconciled("resend")


def _match(client: WeComClient, msgid: str, sender: str, chat_type: str, body: dict[str, Any]) -> list[str] | None:
    """The fail_list if message `msgid` is this task's (sender and recipients), else None."""
    row, cancelled = read_task(client, msgid, sender)
    if row is None and not cancelled:
        return None
    if chat_type != "single":
        return []
    wanted = [str(t) for t in body.get("external_userid") or []]
    listed = {str(r.get("external_userid")) for r in client.iter_groupmsg_send_result(msgid, sender)}
    if not listed & set(wanted):
        return None
    return [t for t in wanted if t not in listed]


def _attachment_key(item: dict[str, Any]) -> tuple[Any, ...]:
    kind = item.get("msgtype")
    obj = item.get(kind) if isinstance(kind, str) else None
    obj = obj if isinstance(obj, dict) else {}
    if kind == "link":
        return (kind, obj.get("url"), obj.get("title"))
    if kind == "miniprogram":
        return (kind, obj.get("appid"), obj.get("page"), obj.get("title"))
    return (kind, obj.get("media_id") or obj.get("pic_url"))


def same_content(msg: dict[str, Any], body: dict[str, Any]) -> bool:
    """The listed message has the body's text and attachments (compared by what identifies each)."""
    text = ((msg.get("text") or {}).get("content") or "") == ((body.get("text") or {}).get("content") or "")
    return text and [_attachment_key(a) for a in msg.get("attachments") or []] == \
        [_attachment_key(a) for a in body.get("attachments") or []]


# ---------------------------------------------------------------- cancel


def cancel(campaign: Campaign, actor: str, now: dt.datetime) -> Campaign:
    """Stop the campaign: nothing more is sent. Before sending, nothing was sent at all; while sending,
    commands still waiting are withdrawn, messages WeCom made are cancelled there (flushes)."""
    if campaign.status in (DONE, CANCELLED, FAILED):
        raise Conflict("群发已结束，无法取消")
    before = campaign.status
    moved = db.session.execute(update(Campaign).where(Campaign.id == campaign.id, Campaign.status == before)
                               .values(status=CANCELLED, cancelled_at=now, cancelled_by=actor, updated_at=now)
                               .execution_options(synchronize_session=False))
    if not rowcount(moved):
        raise Conflict("群发状态刚刚发生了变化，请刷新后重试")
    db.session.refresh(campaign)
    withdrawn = cancelling = 0
    if before in (SCHEDULED, PLANNING):
        db.session.execute(update(R).where(R.campaign_id == campaign.id, R.status == R_PLANNED)
                           .values(status=R_CANCELLED).execution_options(synchronize_session=False))
        campaign.finished_at = now
    else:
        for task in db.session.scalars(select(CampaignTask).where(CampaignTask.campaign_id == campaign.id)):
            if task.status == T_PENDING:
                withdrawn += _withdraw(task, now)
            elif task.status == T_CREATED and task.msgid:
                enqueue_cancel(campaign, task)
                cancelling += 1
    campaign.counts = recipient_counts(campaign.id)
    audit(campaign.corp_id, actor, "campaign.cancel", "campaign", str(campaign.id),
          {"was": before, "withdrawn": withdrawn, "cancelling": cancelling})
    db.session.flush()
    return campaign


def _withdraw(task: CampaignTask, now: dt.datetime) -> int:
    """Take a task's command back from the outbox if no worker holds it (1), else cancel it once WeCom
    answers (0)."""
    taken = 1
    if task.command_id is not None:
        taken = int(withdraw(task.command_id, "the campaign was cancelled"))
    if taken:
        db.session.execute(update(R).where(R.campaign_id == task.campaign_id, R.sender_userid == task.sender_userid,
                                           R.target_pk >= task.first_pk, R.target_pk <= task.last_pk,
                                           R.status == R_PLANNED)
                           .values(status=R_CANCELLED).execution_options(synchronize_session=False))
        task.status, task.complete = T_CANCELLED, True
    else:
        task.status = T_CANCELLING
    return taken


def enqueue_cancel(campaign: Campaign, task: CampaignTask) -> None:
    task.status = T_CANCELLING
    enqueue(campaign.corp_id, CANCEL, "cancel_groupmsg_send",
            {"msgid": task.msgid, "campaign_id": campaign.id, "task_id": task.id},
            dedupe_key=f"campaign:{campaign.id}:cancel:{task.id}")


def on_cancel_done(command: OutboxCommand) -> None:
    """WeCom cancelled the message: what was not sent never will be."""
    found = _task(command)
    if found is None:
        return
    task, _ = found
    if task.status == T_CANCELLING:
        db.session.execute(update(R).where(R.campaign_id == task.campaign_id, R.sender_userid == task.sender_userid,
                                           R.target_pk >= task.first_pk, R.target_pk <= task.last_pk,
                                           R.status == R_PLANNED)
                           .values(status=R_CANCELLED).execution_options(synchronize_session=False))
        # the poll still reads what the sender sent before the cancel, then closes the task
        task.next_poll_at = command.done_at or utcnow()


def on_cancel_failed(command: OutboxCommand) -> None:
    """41093: it was already cancelled (the same as done); anything else is recorded on the task."""
    if command.last_errcode == 41093:
        on_cancel_done(command)
        return
    found = _task(command)
    if found is not None:
        task, _ = found
        task.error = f"取消失败：{describe(command.last_errcode, command.last_error)}"


# ---------------------------------------------------------------- remind


def reminders_in_day(campaign_id: int, now: dt.datetime) -> list[CampaignReminder]:
    return list(db.session.scalars(select(CampaignReminder).where(
        CampaignReminder.campaign_id == campaign_id, CampaignReminder.at > now - dt.timedelta(hours=24))
        .order_by(CampaignReminder.at)))


def remind(campaign: Campaign, actor: str, now: dt.datetime) -> CampaignReminder:
    """Remind every sender who has not confirmed yet (flushes). WeCom allows 3 reminders of a message in
    24 hours: the 4th is refused here, saying when the next one is possible."""
    if campaign.status not in (SENDING, FOLLOWING):
        raise Conflict("只有发送中的群发可以提醒成员")
    waiting = list(db.session.scalars(select(CampaignTask).where(
        CampaignTask.campaign_id == campaign.id, CampaignTask.status == T_CREATED, CampaignTask.msgid.is_not(None))))
    if not waiting:
        raise Conflict("没有待确认的发送任务，无需提醒")
    recent = reminders_in_day(campaign.id, now)
    if len(recent) >= REMINDS_PER_DAY:
        again = recent[-REMINDS_PER_DAY].at + dt.timedelta(hours=24)
        raise Conflict(f"24 小时内最多提醒 {REMINDS_PER_DAY} 次，请在 {china_datetime(again)} 之后再提醒")
    reminder = CampaignReminder(corp_id=campaign.corp_id, campaign_id=campaign.id, at=now, actor=actor,
                                tasks=len(waiting))
    db.session.add(reminder)
    db.session.flush()
    for task in waiting:
        enqueue(campaign.corp_id, REMIND, "remind_groupmsg_send",
                {"msgid": task.msgid, "campaign_id": campaign.id, "task_id": task.id, "reminder_id": reminder.id},
                dedupe_key=f"campaign:{campaign.id}:remind:{reminder.id}:{task.id}")
    audit(campaign.corp_id, actor, "campaign.remind", "campaign", str(campaign.id),
          {"reminder_id": reminder.id, "tasks": len(waiting), "senders": sorted({t.sender_userid for t in waiting})})
    return reminder


def on_remind_failed(command: OutboxCommand) -> None:
    """WeCom refused a reminder (41094: 3 in 24 h already; 41093: cancelled): counted on the reminder."""
    reminder = db.session.get(CampaignReminder, int((command.args or {}).get("reminder_id") or 0))
    if reminder is not None:
        reminder.refused += 1
    audit(command.corp_id, "wecom", "campaign.remind_failed", "campaign", str((command.args or {}).get("campaign_id")),
          {"msgid": (command.args or {}).get("msgid"), "errcode": command.last_errcode,
           "message": "企业微信：提醒太频繁（24 小时内最多 3 次）" if command.last_errcode == 41094
           else describe(command.last_errcode, command.last_error)})


def reconcile_remind(view: CommandView, client: WeComClient) -> Reconciled:
    """A reminder whose answer was lost. WeCom cannot be asked whether it reminded; it is not sent again
    (that would spend one of the 3 allowed and notify twice). The task is read so the log says whether the
    sender had confirmed meanwhile."""
    try:
        waiting = sum(1 for t in client.iter_groupmsg_task(str(view.args.get("msgid"))) if not t.get("status"))
    except WeComError as exc:
        if exc.errcode != 41093:
            raise
        waiting = 0
    log.info("campaigns.remind.reconciled command=%s waiting=%s (not sent again)", view.id, waiting)
    return Reconciled("done", result={"assumed": True, "waiting": waiting})


# ---------------------------------------------------------------- wiring


def register_hooks(app: Flask) -> None:
    register_outbox_hooks(app, SEND, on_done=on_send_done, on_failed=on_send_failed)
    register_reconciler(app, SEND, reconcile_send)
    register_outbox_hooks(app, CANCEL, on_done=on_cancel_done, on_failed=on_cancel_failed)
    register_outbox_hooks(app, REMIND, on_failed=on_remind_failed)
    register_reconciler(app, REMIND, reconcile_remind)


def sender_names(corp_id: str, userids: list[str]) -> dict[str, str]:
    """Staff names by userid (the userid itself when the name is unknown)."""
    if not userids:
        return {}
    names = dict(db.session.execute(select(Staff.userid, Staff.name).where(
        Staff.corp_id == corp_id, Staff.userid.in_(sorted(set(userids))))).tuples().all())
    return {u: names.get(u) or u for u in userids}


def task_summary(campaign_id: int) -> dict[str, int]:
    rows = db.session.execute(select(CampaignTask.status, func.count()).where(CampaignTask.campaign_id == campaign_id)
                              .group_by(CampaignTask.status)).all()
    return {str(s): int(n) for s, n in rows}

