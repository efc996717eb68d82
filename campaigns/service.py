"""What marketers do with campaigns: compose one (checked here, planned at send time), preview its reach,
read where it stands, cancel it, remind its senders, export its results; and the corp's campaign settings.

Services flush; the request, job or command that calls them commits once. Planning is in `planning`,
sending and the outbox in `sending`, following WeCom's results in `following`, attachments in `media`.

Who sees what: marketers (and admins) compose for the whole customer base and see every campaign; a
manager composes for the customers of their team (their scope, kept on the campaign, so the audience and
the senders stay within it at send time) and sees the campaigns they composed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import ColumnElement, func, select, true

from core.db import db, utcnow
from core.errors import NotFound, UserValueError
from core.time import china_datetime, to_china
from crm.models import Customer, GroupChat, Staff
from crm.service import audit
from identity.service import Principal
from identity.web import scope_for
from tagging.assignments.service import tags_by_id
from tagging.segments.service import get_segment, validate_filter

from . import media
from .models import (CANCELLED, DONE, FAILED, FOLLOWING, PLANNING, R_CANCELLED, R_DELIVERED, R_EXCLUDED, R_FAILED,
                     R_NOT_FRIEND, R_PLANNED, R_QUOTA, R_UNSENT, SCHEDULED, SENDING, T_CREATED, T_SENT, X_LOST,
                     X_NO_SENDER, X_QUOTA, Campaign, CampaignRecipient, CampaignReminder, CampaignSettings,
                     CampaignTask)
from .planning import (QUOTA_PERIODS, SENDER_RULES, Audience, audience_of, corp_settings, preview_counts,
                       quota_window, recipient_counts)
from .sending import REMINDS_PER_DAY, cancel, remind, reminders_in_day, sender_names, task_summary

log = logging.getLogger("scrm.campaigns")

R = CampaignRecipient
ROLES = ("marketer", "manager")
MAX_TEXT_BYTES = 4000
MAX_OWNERS = 100
MAX_PREFERRED = 50
MAX_AHEAD = dt.timedelta(days=365)
PAST_GRACE = dt.timedelta(minutes=5)

STATUS_LABELS = {SCHEDULED: "待发送", PLANNING: "计算受众中", SENDING: "发送中", FOLLOWING: "等待成员确认",
                 DONE: "已完成", CANCELLED: "已取消", FAILED: "发送失败"}
RECIPIENT_LABELS = {R_EXCLUDED: "已排除", R_PLANNED: "待发送", R_DELIVERED: "已送达", R_NOT_FRIEND: "非好友",
                    R_QUOTA: "已达接收上限", R_UNSENT: "未发送", R_FAILED: "发送失败", R_CANCELLED: "已取消"}
REASON_LABELS = {X_LOST: "已流失（无人跟进）", X_QUOTA: "超出接收次数上限", X_NO_SENDER: "跟进成员均已离职或停用",
                 "fail_list": "企业微信拒收"}
TASK_LABELS = {"pending": "提交中", T_CREATED: "待成员确认", T_SENT: "成员已发送", "failed": "提交失败",
               "cancelling": "取消中", "cancelled": "已取消", "expired": "超时未确认"}
RULE_LABELS = {"followup": "最近写跟进的成员优先，其次最早添加的成员", "earliest": "最早添加客户的成员",
               "latest": "最近添加客户的成员", "preferred": "指定成员优先"}


# ---------------------------------------------------------------- settings


def settings_dict(row: CampaignSettings) -> dict[str, Any]:
    return {"quota_count": row.quota_count, "quota_period": row.quota_period, "follow_days": row.follow_days,
            "updated_by": row.updated_by or None,
            "updated_at": row.updated_at.isoformat() if row.updated_at and row.id else None}


def save_settings(corp_id: str, actor: str, *, quota_count: Any, quota_period: Any, follow_days: Any) -> CampaignSettings:
    """The corp's receive quota (per China day or natural month) and follow window (flushes)."""
    if isinstance(quota_count, bool) or not isinstance(quota_count, int) or not 1 <= quota_count <= 31:
        raise UserValueError("每位客户可接收的群发次数应为 1 到 31 之间的整数", field="quota_count")
    if quota_period not in QUOTA_PERIODS:
        raise UserValueError("统计周期应为“每天”或“每月”", field="quota_period")
    if isinstance(follow_days, bool) or not isinstance(follow_days, int) or not 1 <= follow_days <= 30:
        raise UserValueError("跟踪天数应为 1 到 30 之间的整数", field="follow_days")
    row = db.session.scalar(select(CampaignSettings).where(CampaignSettings.corp_id == corp_id))
    if row is None:
        row = CampaignSettings(corp_id=corp_id)
        db.session.add(row)
    row.quota_count, row.quota_period, row.follow_days = quota_count, quota_period, follow_days
    row.updated_at, row.updated_by = utcnow(), actor
    audit(corp_id, actor, "campaign.settings", "campaign_settings", corp_id,
          {"quota_count": quota_count, "quota_period": quota_period, "follow_days": follow_days})
    db.session.flush()
    return row


# ---------------------------------------------------------------- composing


@dataclass
class Spec:
    """A campaign as composed, checked: what `create` saves and `preview` counts."""

    name: str
    chat_type: str
    segment_id: int | None
    tree: Any
    owners: list[str]
    text: str
    attachments: list[dict[str, Any]]
    send_at: dt.datetime
    sender_rule: str
    preferred: list[str]
    tag_id: str | None
    scope_userids: list[str] | None = field(default=None)


def _staff(corp_id: str, userids: Any, label: str, key: str, limit: int, scope: Any) -> list[str]:
    if userids is None:
        return []
    if not isinstance(userids, list) or not all(isinstance(u, str) and u for u in userids):
        raise UserValueError(f"{label}应为成员 userid 列表", field=key)
    wanted = list(dict.fromkeys(userids))
    if len(wanted) > limit:
        raise UserValueError(f"{label}最多 {limit} 位", field=key)
    known = set(db.session.scalars(select(Staff.userid).where(Staff.corp_id == corp_id, Staff.userid.in_(wanted))))
    unknown = [u for u in wanted if u not in known or not scope.allows(u)]
    if unknown:
        raise UserValueError(f"{label}中有不存在或您无权查看的成员：{'、'.join(unknown)}", field=key)
    return wanted


def _send_at(value: Any, now: dt.datetime) -> dt.datetime:
    if value in (None, ""):
        return now
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise UserValueError("发送时间格式不对", field="send_at")
    if value < now - PAST_GRACE:
        raise UserValueError("发送时间已经过去，请选择将来的时间或“立即发送”", field="send_at")
    if value > now + MAX_AHEAD:
        raise UserValueError("发送时间最多可以设在一年之内", field="send_at")
    return max(value, now)


def _audience(p: Principal, data: dict[str, Any]) -> tuple[int | None, Any]:
    segment_id, tree = data.get("segment_id"), data.get("filter")
    if segment_id is not None and tree is not None:
        raise UserValueError("受众请选择已保存的分群，或设置筛选条件，二者选一", field="segment_id")
    if segment_id is not None:
        segment = get_segment(p.corp_id, segment_id) if isinstance(segment_id, int) else None
        if segment is None:
            raise UserValueError("找不到该客户分群", field="segment_id")
        return segment.id, None
    if tree is None:
        raise UserValueError("请选择客户分群，或设置筛选条件", field="filter")
    validate_filter(p.corp_id, tree)
    return None, tree


def clean(p: Principal, data: dict[str, Any], *, now: dt.datetime | None = None, draft: bool = False) -> Spec:
    """Check a campaign as composed (the API body, or the console form turned into it); `draft` allows a
    missing name and content (the composer's live preview)."""
    now = now or utcnow()
    scope = scope_for(p)
    name = data.get("name")
    name = name.strip() if isinstance(name, str) else ""
    if not name and not draft:
        raise UserValueError("请填写群发名称", field="name")
    if len(name) > 64:
        raise UserValueError("群发名称最多 64 个字", field="name")
    chat_type = data.get("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise UserValueError("发送对象应为客户（single）或客户群（group）", field="chat_type")
    segment_id, tree, owners = None, None, []
    if chat_type == "single":
        segment_id, tree = _audience(p, data)
    else:
        owners = _staff(p.corp_id, data.get("owners"), "群主", "owners", MAX_OWNERS, scope)
        if not owners:
            raise UserValueError("请选择群主：将发送给他们的客户群", field="owners")
    text = data.get("text") or ""
    if not isinstance(text, str):
        raise UserValueError("消息内容应为文字", field="text")
    text = text.strip()
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise UserValueError(f"消息内容太长（最多 {MAX_TEXT_BYTES} 字节，约 1300 个汉字）", field="text")
    attachments = media.clean_attachments(p.corp_id, data.get("attachments"))
    if not text and not attachments and not draft:
        raise UserValueError("请填写消息内容或添加附件", field="text")
    rule = data.get("sender_rule") or "followup"
    if rule not in SENDER_RULES:
        raise UserValueError(f"发送成员规则应为 {', '.join(SENDER_RULES)} 之一", field="sender_rule")
    preferred = _staff(p.corp_id, data.get("preferred_userids"), "优先发送成员", "preferred_userids", MAX_PREFERRED,
                       scope)
    if rule == "preferred" and not preferred:
        raise UserValueError("请选择优先发送的成员", field="preferred_userids")
    tag_id = data.get("tag_id") or None
    if tag_id is not None:
        if chat_type != "single":
            raise UserValueError("只有发给客户的群发可以给送达客户打标签", field="tag_id")
        tags_by_id(p.corp_id, [str(tag_id)])
    return Spec(name=name, chat_type=chat_type, segment_id=segment_id, tree=tree, owners=owners, text=text,
                attachments=attachments, send_at=_send_at(data.get("send_at"), now), sender_rule=rule,
                preferred=preferred, tag_id=str(tag_id) if tag_id else None,
                scope_userids=None if scope.all else sorted(scope.userids))


def create(p: Principal, data: dict[str, Any], *, now: dt.datetime | None = None) -> Campaign:
    """Save a campaign to be sent at its time (flushes); the audience is resolved when it is sent."""
    spec = clean(p, data, now=now)
    campaign = Campaign(corp_id=p.corp_id, name=spec.name, chat_type=spec.chat_type, segment_id=spec.segment_id,
                        filter=spec.tree, owners=spec.owners, text=spec.text, attachments=spec.attachments,
                        sender_rule=spec.sender_rule, preferred_userids=spec.preferred,
                        scope_userids=spec.scope_userids, tag_id=spec.tag_id, send_at=spec.send_at,
                        status=SCHEDULED, created_by=p.actor, creator_userid=p.userid, progress={}, counts={},
                        plan_cursor=0)
    db.session.add(campaign)
    db.session.flush()
    audit(p.corp_id, p.actor, "campaign.create", "campaign", str(campaign.id),
          {"name": spec.name, "chat_type": spec.chat_type, "segment_id": spec.segment_id, "filter": spec.tree,
           "owners": spec.owners, "send_at": spec.send_at.isoformat(), "attachments": len(spec.attachments)})
    log.info("campaigns.created id=%s send_at=%s", campaign.id, spec.send_at.isoformat())
    return campaign


def preview(p: Principal, data: dict[str, Any], *, now: dt.datetime | None = None) -> dict[str, Any]:
    """How many customers (chats) the campaign would reach if it were sent now, who is excluded and why,
    how many senders and WeCom calls, and a sample: the same decisions planning will make."""
    now = now or utcnow()
    spec = clean(p, data, now=now, draft=True)
    tree = spec.tree
    if spec.segment_id is not None:
        segment = get_segment(p.corp_id, spec.segment_id)
        tree = segment.filter if segment is not None else None
    conf = corp_settings(p.corp_id)
    audience = Audience(corp_id=p.corp_id, chat_type=spec.chat_type, tree=tree, owners=tuple(spec.owners),
                        scope_userids=frozenset(spec.scope_userids) if spec.scope_userids is not None else None,
                        sender_rule=spec.sender_rule, preferred=tuple(spec.preferred), quota_count=conf.quota_count,
                        period=quota_window(conf.quota_period, spec.send_at))
    result = preview_counts(audience)
    names = sender_names(p.corp_id, list(result["per_sender"]) + [s["sender_userid"] for s in result["sample"]])
    targets = _target_names(p.corp_id, spec.chat_type, [s["target"] for s in result["sample"]])
    result["sample"] = [{"target": s["target"], "name": targets.get(s["target"], s["target"]),
                         "sender_userid": s["sender_userid"], "sender_name": names.get(s["sender_userid"], "")}
                        for s in result["sample"]]
    result["per_sender"] = [{"userid": u, "name": names.get(u, u), "count": n}
                            for u, n in list(result["per_sender"].items())[:20]]
    result["quota"] = {"count": conf.quota_count, "period": conf.quota_period}
    return result


def _target_names(corp_id: str, chat_type: str, targets: list[str]) -> dict[str, str]:
    if not targets:
        return {}
    if chat_type == "group":
        rows = db.session.execute(select(GroupChat.chat_id, GroupChat.name).where(
            GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(targets))).tuples().all()
    else:
        rows = db.session.execute(select(Customer.external_userid, Customer.name).where(
            Customer.corp_id == corp_id, Customer.external_userid.in_(targets))).tuples().all()
    return {t: n or t for t, n in rows}


# ---------------------------------------------------------------- reading


def estimate(campaign: Campaign, now: dt.datetime | None = None) -> dict[str, Any]:
    """What a scheduled campaign would reach if it were sent now (its audience is computed at send time)."""
    try:
        audience = audience_of(campaign, now or utcnow())
    except UserValueError as exc:
        return {"error": exc.message}
    return preview_counts(audience, sample_size=0)


def visible(p: Principal) -> ColumnElement[bool]:
    """Managers see the campaigns they composed; marketers and admins every campaign of the corp."""
    if p.has_role("marketer"):
        return true()
    return Campaign.creator_userid == (p.userid or "")


def get_campaign(p: Principal, campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.corp_id != p.corp_id or not db.session.scalar(
            select(func.count()).select_from(Campaign).where(Campaign.id == campaign_id, visible(p))):
        raise NotFound("找不到该群发")
    return campaign


def list_campaigns(p: Principal, *, status: str | None = None, before: int | None = None,
                   limit: int = 50) -> list[Campaign]:
    """Newest first; `before` is the id the next page starts below."""
    query = select(Campaign).where(Campaign.corp_id == p.corp_id, visible(p))
    if status:
        query = query.where(Campaign.status == status)
    if before:
        query = query.where(Campaign.id < before)
    return list(db.session.scalars(query.order_by(Campaign.id.desc()).limit(limit)))


def counts_of(campaign: Campaign) -> dict[str, Any]:
    """Live counts while the campaign moves, the stored ones once it is over."""
    if campaign.status in (DONE, FAILED) and campaign.counts:
        return dict(campaign.counts)
    return recipient_counts(campaign.id)


def rates(counts: dict[str, Any]) -> dict[str, Any]:
    """Reach figures: sent = everyone not excluded; delivery rate = delivered / sent."""
    sent = int(counts.get("total", 0)) - int(counts.get("excluded_total", 0))
    delivered = int(counts.get(R_DELIVERED, 0))
    return {"sent": sent, "delivered": delivered, "delivery_rate": round(delivered / sent, 4) if sent else None}


def campaign_dict(campaign: Campaign, *, counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A campaign as the API and the pages show it (no recipients: they are paged)."""
    counts = counts if counts is not None else (dict(campaign.counts or {}) or {"total": 0, "excluded": {}})
    return {
        "id": campaign.id, "name": campaign.name, "chat_type": campaign.chat_type, "status": campaign.status,
        "status_label": STATUS_LABELS.get(campaign.status, campaign.status), "segment_id": campaign.segment_id,
        "filter": campaign.filter, "owners": list(campaign.owners or []), "text": campaign.text,
        "attachments": list(campaign.attachments or []), "sender_rule": campaign.sender_rule,
        "preferred_userids": list(campaign.preferred_userids or []), "tag_id": campaign.tag_id,
        "send_at": campaign.send_at.isoformat(), "created_by": campaign.created_by,
        "created_at": campaign.created_at.isoformat(),
        "planned_at": _iso(campaign.planned_at), "sent_at": _iso(campaign.sent_at),
        "finished_at": _iso(campaign.finished_at), "follow_until": _iso(campaign.follow_until),
        "cancelled_at": _iso(campaign.cancelled_at), "cancelled_by": campaign.cancelled_by,
        "progress": progress_of(campaign), "counts": counts, **rates(counts), "error": campaign.error,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def progress_of(campaign: Campaign) -> dict[str, Any]:
    """Stage and percentage: planning (chunks of the audience), sending (tasks answered), then done."""
    progress = dict(campaign.progress or {})
    stage = progress.get("stage") or ("waiting" if campaign.status == SCHEDULED else "done")
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    if campaign.status in (FOLLOWING, DONE, CANCELLED, FAILED) and stage == "sending" and campaign.status != CANCELLED:
        done = total
    percent = 100 if campaign.status in (FOLLOWING, DONE) else (int(done * 100 / total) if total else 0)
    return {"stage": stage, "done": done, "total": total, "percent": percent}


def detail(campaign: Campaign) -> dict[str, Any]:
    """The campaign with its per-sender figures, its tasks and its reminders (API and detail page)."""
    body = campaign_dict(campaign, counts=counts_of(campaign))
    body["senders"] = sender_rows(campaign)
    body["tasks"] = task_rows(campaign)
    now = utcnow()
    recent = reminders_in_day(campaign.id, now)
    body["reminders"] = {"in_last_24h": len(recent), "allowed": REMINDS_PER_DAY,
                         "next_at": (recent[-REMINDS_PER_DAY].at + dt.timedelta(hours=24)).isoformat()
                         if len(recent) >= REMINDS_PER_DAY else None,
                         "history": [{"at": r.at.isoformat(), "actor": r.actor, "tasks": r.tasks,
                                      "refused": r.refused} for r in _reminders(campaign.id)]}
    body["task_counts"] = task_summary(campaign.id)
    return body


def _reminders(campaign_id: int) -> list[CampaignReminder]:
    return list(db.session.scalars(select(CampaignReminder).where(CampaignReminder.campaign_id == campaign_id)
                                   .order_by(CampaignReminder.at.desc()).limit(20)))


def sender_rows(campaign: Campaign) -> list[dict[str, Any]]:
    """Per sender: their tasks (confirmed or not) and their recipients by result, largest first."""
    rows = db.session.execute(select(R.sender_userid, R.status, func.count()).where(
        R.campaign_id == campaign.id, R.sender_userid.is_not(None), R.status != R_EXCLUDED)
        .group_by(R.sender_userid, R.status)).all()
    tasks = db.session.execute(select(CampaignTask.sender_userid, CampaignTask.status, CampaignTask.confirmed_at)
                               .where(CampaignTask.campaign_id == campaign.id)).all()
    per: dict[str, dict[str, Any]] = {}
    for sender, status, n in rows:
        entry = per.setdefault(str(sender), {"userid": str(sender), "total": 0})
        entry[str(status)] = int(n)
        entry["total"] += int(n)
    for sender, status, confirmed_at in tasks:
        entry = per.setdefault(str(sender), {"userid": str(sender), "total": 0})
        entry.setdefault("task_statuses", []).append(str(status))
        if confirmed_at is not None:
            entry["confirmed_at"] = max(entry.get("confirmed_at") or confirmed_at, confirmed_at)
    names = sender_names(campaign.corp_id, list(per))
    out = []
    for userid, entry in sorted(per.items(), key=lambda kv: (-kv[1]["total"], kv[0])):
        statuses = entry.pop("task_statuses", [])
        confirmed = bool(statuses) and all(s == T_SENT for s in statuses)
        out.append({"userid": userid, "name": names.get(userid, userid), "total": entry["total"],
                    "confirmed": confirmed, "confirmed_at": _iso(entry.get("confirmed_at")),
                    "task_status": _task_status(statuses),
                    **{k: int(entry.get(k, 0)) for k in (R_PLANNED, R_DELIVERED, R_NOT_FRIEND, R_QUOTA, R_UNSENT,
                                                         R_FAILED, R_CANCELLED)}})
    return out


def _task_status(statuses: list[str]) -> str:
    if not statuses:
        return ""
    for status in ("pending", "cancelling", T_CREATED, "failed", "expired", "cancelled"):
        if status in statuses:
            return TASK_LABELS[status]
    return TASK_LABELS[T_SENT]


def task_rows(campaign: Campaign) -> list[dict[str, Any]]:
    tasks = list(db.session.scalars(select(CampaignTask).where(CampaignTask.campaign_id == campaign.id)
                                    .order_by(CampaignTask.sender_userid, CampaignTask.seq)))
    names = sender_names(campaign.corp_id, [t.sender_userid for t in tasks])
    return [{"id": t.id, "sender_userid": t.sender_userid, "sender_name": names.get(t.sender_userid, t.sender_userid),
             "seq": t.seq, "size": t.size, "status": t.status, "status_label": TASK_LABELS.get(t.status, t.status),
             "msgid": t.msgid, "fail_count": t.fail_count, "errcode": t.errcode, "error": t.error,
             "confirmed_at": _iso(t.confirmed_at), "complete": t.complete} for t in tasks]


def recipients_page(campaign: Campaign, *, status: str | None = None, after: int = 0,
                    limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """One page of recipients (id order, keyset: `after` the last target id seen) with names; the next `after`."""
    query = select(R.target_pk, R.target, R.sender_userid, R.status, R.reason, R.sent_at).where(
        R.campaign_id == campaign.id, R.target_pk > after)
    if status:
        query = query.where(R.status == status)
    rows = db.session.execute(query.order_by(R.target_pk).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    targets = _target_names(campaign.corp_id, campaign.chat_type, [r.target for r in rows])
    names = sender_names(campaign.corp_id, [r.sender_userid for r in rows if r.sender_userid])
    page = [{"target": r.target, "name": targets.get(r.target, r.target),
             "sender_userid": r.sender_userid if r.status != R_EXCLUDED else None,
             "sender_name": names.get(r.sender_userid, "") if r.sender_userid and r.status != R_EXCLUDED else "",
             "status": r.status,
             "status_label": RECIPIENT_LABELS.get(r.status, r.status), "reason": r.reason,
             "reason_label": REASON_LABELS.get(r.reason or "", r.reason or ""), "sent_at": _iso(r.sent_at)}
            for r in rows]
    return page, (int(rows[-1].target_pk) if more and rows else None)


def delivery_timeline(campaign: Campaign, now: dt.datetime | None = None) -> dict[str, Any]:
    """Deliveries per hour (China time) and their running total, every hour from the send to the last
    delivery (or now, while the campaign is followed), so quiet hours show as quiet."""
    hour = _hour_bucket(R.sent_at)
    rows = db.session.execute(select(hour, func.count()).where(R.campaign_id == campaign.id, R.status == R_DELIVERED,
                                                               R.sent_at.is_not(None)).group_by(hour).order_by(hour)).all()
    counts = {_parse_bucket(bucket): int(n) for bucket, n in rows}
    if not counts:
        return {"labels": [], "per_hour": [], "cumulative": []}
    start = min([*counts, *([_floor_hour(campaign.planned_at)] if campaign.planned_at else [])])
    end = max(counts)
    if campaign.status in (SENDING, FOLLOWING):
        end = max(end, _floor_hour(min(now or utcnow(), campaign.follow_until or utcnow())))
    end = min(end, start + dt.timedelta(hours=MAX_TIMELINE_HOURS - 1))
    labels, per_hour, running, total = [], [], [], 0
    moment = start
    while moment <= end:
        total += counts.get(moment, 0)
        labels.append(china_datetime(moment)[5:])  # "12-05 14:00"
        per_hour.append(counts.get(moment, 0))
        running.append(total)
        moment += dt.timedelta(hours=1)
    return {"labels": labels, "per_hour": per_hour, "cumulative": running}


MAX_TIMELINE_HOURS = 24 * 31


def _floor_hour(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _hour_bucket(column: Any) -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24:00:00")
    return func.strftime("%Y-%m-%d %H:00:00", column)


def _parse_bucket(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------- export


CSV_HEADER = ["客户/客户群", "外部联系人ID/群ID", "发送成员", "发送成员ID", "结果", "排除原因", "送达时间（北京时间）"]


def cell(value: str) -> str:
    """A CSV cell Excel will not run as a formula (a nickname may start with =, +, - or @)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_rows(campaign: Campaign, batch: int = 5000) -> Iterator[list[str]]:
    """Every recipient, in id order, read a batch at a time (a million rows never sit in memory)."""
    after = 0
    while True:
        page, next_after = recipients_page(campaign, after=after, limit=batch)
        for row in page:
            moment = to_china(row["sent_at"])
            yield [cell(row["name"]), row["target"], cell(row["sender_name"]), row["sender_userid"] or "",
                   row["status_label"], row["reason_label"], moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""]
        if next_after is None:
            return
        after = next_after


def export_csv(campaign: Campaign) -> Iterator[str]:
    """The results as CSV text chunks (UTF-8 with a BOM, so Excel opens the Chinese right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    for i, row in enumerate(export_rows(campaign), start=1):
        writer.writerow(row)
        if i % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_filename(campaign: Campaign) -> str:
    return f"campaign-{campaign.id}-results.csv"


# ---------------------------------------------------------------- actions on a campaign


def cancel_campaign(p: Principal, campaign: Campaign, *, now: dt.datetime | None = None) -> Campaign:
    """Cancel (see `sending.cancel`); flushes."""
    return cancel(campaign, p.actor, now or utcnow())


def remind_senders(p: Principal, campaign: Campaign, *, now: dt.datetime | None = None) -> CampaignReminder:
    """Remind the senders who have not confirmed (see `sending.remind`); flushes."""
    return remind(campaign, p.actor, now or utcnow())
