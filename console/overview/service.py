"""The overview (概览): figures and charts for a period, a department and a channel, read from the
pre-aggregates of `models.py` (`refresh.py` keeps them), so each query reads a few thousand rows
whatever the size of the corp. Two sections read their packages' own tables instead, each in two
set-based queries: campaign delivery (群发触达: the counts stored on each campaign, or its recipients
by status when a department is chosen) and handover outcomes (客户交接结果: the customers of
the period's jobs by takeover colleague and status). Neither follows the channel filter.

A principal sees the figures of the staff members in their scope (`identity.web.scope_for`): a staff
member their own, a manager their team's, marketers and admins everyone's. The sections are a list
(`SECTIONS`); the page, the API and the CSV downloads all go through `overview()`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import ColumnElement, func, or_, select

from campaigns.models import (R_CANCELLED, R_DELIVERED, R_EXCLUDED, R_FAILED, R_NOT_FRIEND, R_PLANNED, R_QUOTA,
                              R_UNSENT, SCHEDULED, Campaign, CampaignRecipient)
from core.db import db
from core.errors import UserValueError
from core.time import china_day_start, china_datetime
from crm.models import FollowRelation, Staff, Tag, TagGroup
from handover.models import HandoverCustomer, HandoverJob
from handover.service import CUSTOMER_LABELS
from identity.service import Principal
from identity.web import scope_for
from tagging.lifecycle.stages import list_stages

from ..labels import staff_names
from .models import OverviewCurrent, OverviewDaily, OverviewMonthly, OverviewState, OverviewTagCount
from .refresh import china_today

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
NO_CHANNEL = "__none__"  # the filter value for relations added without a channel (State '')
NO_CHANNEL_LABEL = "未标记渠道"


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date  # inclusive

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def granularity(self) -> str:
        """Points of the growth chart: days up to three months, weeks up to about a year, then months."""
        return "day" if self.days <= 92 else "week" if self.days <= 400 else "month"


@dataclass(frozen=True)
class Filters:
    corp_id: str
    period: Period
    userids: frozenset[str] | None  # None: every staff member (an unlimited scope, no department)
    department: int | None
    channel: str | None  # a State, '' for "no channel", None for every channel


def _day(value: Any, label: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        raise UserValueError(f"{label}格式不对，应为 YYYY-MM-DD", field=label) from None
    if not 2000 <= day.year <= 2100:
        raise UserValueError(f"{label}应在 2000 到 2100 年之间", field=label)
    return day


def parse_period(start: Any, end: Any, today: dt.date | None = None) -> Period:
    """From/to China dates (both included); the last 30 days when absent."""
    today = today or china_today()
    last = _day(end, "结束日期") or today
    first = _day(start, "开始日期") or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise UserValueError("开始日期不能晚于结束日期", field="from")
    if (last - first).days + 1 > MAX_DAYS:
        raise UserValueError(f"时间范围最长 {MAX_DAYS} 天", field="from")
    return Period(first, last)


def department_members(corp_id: str) -> dict[int, list[tuple[str, str]]]:
    """Departments (WeCom's ids) with their active members (userid, name), from the staff table."""
    members: dict[int, list[tuple[str, str]]] = {}
    for userid, name, departments in db.session.execute(
            select(Staff.userid, Staff.name, Staff.department_ids)
            .where(Staff.corp_id == corp_id, Staff.status != "resigned").order_by(Staff.name, Staff.userid)):
        for department in departments or []:
            members.setdefault(int(department), []).append((userid, name or userid))
    return members


def departments(principal: Principal) -> list[dict[str, Any]]:
    """The departments the principal may filter by, each named by its members (WeCom's department names
    are not synced): "部门 2（张伟、李娜 等 6 人）"."""
    scope = scope_for(principal)
    out = []
    for department, people in sorted(department_members(principal.corp_id).items()):
        visible = [(u, n) for u, n in people if scope.allows(u)]
        if not visible:
            continue
        names = "、".join(n for _, n in visible[:3])
        more = f" 等 {len(visible)} 人" if len(visible) > 3 else ""
        out.append({"id": department, "label": f"部门 {department}（{names}{more}）", "size": len(visible)})
    return out


def filters_for(principal: Principal, start: Any = None, end: Any = None, department: Any = None,
                channel: Any = None) -> Filters:
    """The principal's filters, checked: the period, their scope narrowed to a department, a channel."""
    period = parse_period(start, end)
    scope = scope_for(principal)
    userids = None if scope.all else frozenset(scope.userids)
    dept: int | None = None
    if department not in (None, ""):
        try:
            dept = int(department)
        except (TypeError, ValueError):
            raise UserValueError("部门应为部门编号", field="department") from None
        members = {u for u, _ in department_members(principal.corp_id).get(dept, [])}
        if not members or (userids is not None and not members & userids):
            raise UserValueError("没有这个部门，或不在您的查看范围内", field="department")
        userids = frozenset(members if userids is None else members & userids)
    chosen: str | None = None
    if channel not in (None, ""):
        chosen = "" if channel == NO_CHANNEL else str(channel)[:64]
    return Filters(principal.corp_id, period, userids, dept, chosen)


def _where(model: Any, f: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [model.corp_id == f.corp_id]
    if f.userids is not None:
        conds.append(model.userid.in_(sorted(f.userids)))
    if f.channel is not None:
        conds.append(model.state == f.channel)
    return conds


def _in_period(f: Filters) -> list[ColumnElement[bool]]:
    return [*_where(OverviewDaily, f), OverviewDaily.day >= f.period.first, OverviewDaily.day <= f.period.last]


# ---------------------------------------------------------------- sections


def _customers_now(f: Filters) -> int:
    """Customers still followed by a staff member of the filter (through the channel), each once.

    The whole corp: the sum of the pre-aggregate (each customer counted once there). A set of staff or a
    channel: counted from the active relations' (corp, userid, customer) index, since a customer followed
    by two of them must count once, which no sum of per-staff rows can say."""
    if f.userids is None and f.channel is None:
        return int(db.session.scalar(select(func.coalesce(func.sum(OverviewCurrent.customers), 0))
                                     .where(OverviewCurrent.corp_id == f.corp_id)) or 0)
    fr = FollowRelation
    query = select(func.count(func.distinct(fr.customer_id))).where(fr.corp_id == f.corp_id, fr.status == "active")
    if f.userids is not None:
        query = query.where(fr.userid.in_(sorted(f.userids)))
    if f.channel is not None:
        query = query.where(fr.state == f.channel)
    return int(db.session.scalar(query) or 0)


def figures(f: Filters, growth_points: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """The headline numbers: customers now, and what happened in the period (summed from the growth
    chart's points when the caller has them, instead of reading the period again)."""
    customers = _customers_now(f)
    relations = db.session.scalar(select(func.coalesce(func.sum(OverviewCurrent.relations), 0))
                                  .where(*_where(OverviewCurrent, f)))
    if growth_points is not None:
        added, lost, notes = (sum(p[k] for p in growth_points) for k in ("added", "lost", "followups"))
    else:
        added, lost, notes = db.session.execute(
            select(func.coalesce(func.sum(OverviewDaily.added), 0), func.coalesce(func.sum(OverviewDaily.lost), 0),
                   func.coalesce(func.sum(OverviewDaily.followups), 0)).where(*_in_period(f))).one()
    return {"customers": int(customers), "relations": int(relations or 0), "added": int(added), "lost": int(lost),
            "net": int(added) - int(lost), "followups": int(notes or 0)}


def _bucket(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _bucket_label(start: dt.date, granularity: str) -> str:
    if granularity == "week":
        return f"{start.month}月{start.day}日 当周"
    if granularity == "month":
        return f"{start.year}年{start.month}月"
    return f"{start.month}月{start.day}日"


def growth(f: Filters) -> dict[str, Any]:
    """Relations added and lost (and notes written) per day (week, month) of the period, every point present."""
    grain = f.period.granularity
    found: dict[dt.date, list[int]] = {}
    for day, added, lost, notes in db.session.execute(
            select(OverviewDaily.day, func.sum(OverviewDaily.added), func.sum(OverviewDaily.lost),
                   func.sum(OverviewDaily.followups)).where(*_in_period(f)).group_by(OverviewDaily.day)):
        if isinstance(day, str):  # SQLite may hand back the text of a computed date
            day = dt.date.fromisoformat(day)
        point = found.setdefault(_bucket(day, grain), [0, 0, 0])
        point[0] += int(added or 0)
        point[1] += int(lost or 0)
        point[2] += int(notes or 0)
    points, day = [], _bucket(f.period.first, grain)
    while day <= f.period.last:
        added, lost, notes = found.get(day, [0, 0, 0])
        points.append({"start": day.isoformat(), "label": _bucket_label(day, grain), "added": added, "lost": lost,
                       "net": added - lost, "followups": notes})
        day = (day + dt.timedelta(days=1 if grain == "day" else 7) if grain != "month"
               else (day.replace(year=day.year + 1, month=1) if day.month == 12 else day.replace(month=day.month + 1)))
    return {"granularity": grain, "points": points}


def _whole_months(period: Period) -> tuple[dt.date, dt.date] | None:
    """[first, end) of the calendar months lying wholly inside the period, if any."""
    first = period.first if period.first.day == 1 else (period.first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    end = (period.last + dt.timedelta(days=1)).replace(day=1)
    return (first, end) if first < end else None


def _period_by_staff(f: Filters) -> list[tuple[str, int, int, int]]:
    """(userid, added, lost, follow-ups) in the period: whole months from `overview_monthly` (every
    channel), the days around them from `overview_daily`; all days from it when a channel is chosen."""
    months = _whole_months(f.period) if f.channel is None else None
    sums = (func.sum(OverviewDaily.added), func.sum(OverviewDaily.lost), func.sum(OverviewDaily.followups))
    days = select(OverviewDaily.userid, *sums).where(*_in_period(f)).group_by(OverviewDaily.userid)
    if months is None:
        return [(u, int(a or 0), int(lost or 0), int(n or 0)) for u, a, lost, n in db.session.execute(days)]
    days = days.where(or_(OverviewDaily.day < months[0], OverviewDaily.day >= months[1]))
    m = OverviewMonthly
    whole = select(m.userid, func.sum(m.added), func.sum(m.lost), func.sum(m.followups)).where(
        m.corp_id == f.corp_id, m.month >= months[0], m.month < months[1],
        *([m.userid.in_(sorted(f.userids))] if f.userids is not None else [])).group_by(m.userid)
    return [(u, int(a or 0), int(lost or 0), int(n or 0)) for query in (whole, days)
            for u, a, lost, n in db.session.execute(query)]


def staff_table(f: Filters) -> list[dict[str, Any]]:
    """Per staff member: customers now, added, lost and follow-ups written in the period; by customers."""
    rows: dict[str, dict[str, Any]] = {}

    def row(userid: str) -> dict[str, Any]:
        return rows.setdefault(userid, {"userid": userid, "customers": 0, "added": 0, "lost": 0, "followups": 0})

    for userid, relations in db.session.execute(
            select(OverviewCurrent.userid, func.sum(OverviewCurrent.relations))
            .where(*_where(OverviewCurrent, f)).group_by(OverviewCurrent.userid)):
        row(userid)["customers"] = int(relations or 0)
    for userid, added, lost, notes in _period_by_staff(f):
        r = row(userid)
        r.update(added=r["added"] + added, lost=r["lost"] + lost, followups=r["followups"] + notes)
    staff = {u: (n, s) for u, n, s in db.session.execute(
        select(Staff.userid, Staff.name, Staff.status).where(Staff.corp_id == f.corp_id,
                                                             Staff.userid.in_(sorted(rows))))} if rows else {}
    if f.department is not None and f.userids is not None and f.channel is None:
        for userid in f.userids - set(rows):  # everyone of the department, with nothing to show too
            row(userid)
            staff.setdefault(userid, ("", "active"))
    for userid, r in rows.items():
        name, status = staff.get(userid, ("", "unknown"))
        r.update(name=name or userid, resigned=status == "resigned")
    return sorted(rows.values(), key=lambda r: (-r["customers"], -r["added"], r["name"]))


def tag_groups(f: Filters) -> list[dict[str, Any]]:
    """Per live tag group, its live tags with the customers carrying them (each customer once)."""
    counts = dict(db.session.execute(
        select(OverviewTagCount.tag_pk, func.sum(OverviewTagCount.customers))
        .where(*_where(OverviewTagCount, f)).group_by(OverviewTagCount.tag_pk)).tuples().all())
    groups: dict[int, dict[str, Any]] = {}
    for tag, group in db.session.execute(
            select(Tag, TagGroup).join(TagGroup, TagGroup.id == Tag.group_pk)
            .where(Tag.corp_id == f.corp_id, Tag.deleted_at.is_(None), TagGroup.deleted_at.is_(None))
            .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id)).all():
        entry = groups.setdefault(group.id, {"group_id": group.group_id, "name": group.name, "tags": []})
        entry["tags"].append({"tag_id": tag.tag_id, "name": tag.name, "customers": int(counts.get(tag.id, 0) or 0)})
    return list(groups.values())


def funnel(f: Filters) -> dict[str, Any]:
    """Customers by stage now: each funnel stage with those at it or beyond, and the rate from the stage
    before; the lost stages and "no stage" beside it."""
    counts = {stage: int(n or 0) for stage, n in db.session.execute(
        select(OverviewCurrent.stage, func.sum(OverviewCurrent.customers))
        .where(*_where(OverviewCurrent, f)).group_by(OverviewCurrent.stage))}
    stages = list_stages(f.corp_id)
    ladder = [s.name for s in stages if not s.is_lost]
    steps: list[dict[str, Any]] = []
    previous: int | None = None
    for i, name in enumerate(ladder):
        reached = sum(counts.get(n, 0) for n in ladder[i:])
        rate = None if not previous else round(reached * 100 / previous, 1)
        steps.append({"stage": name, "current": counts.get(name, 0), "reached": reached, "rate": rate})
        previous = reached
    known = set(ladder) | {s.name for s in stages}
    lost = [{"stage": s.name, "current": counts.get(s.name, 0)} for s in stages if s.is_lost]
    other = sum(n for stage, n in counts.items() if stage and stage not in known)  # a stage since removed
    return {"steps": steps, "lost": lost, "unset": counts.get("", 0) + other}


def channel_options(f: Filters) -> list[str]:
    """The channels (States) the filtered staff's current customers came through (a small table)."""
    unfiltered = Filters(f.corp_id, f.period, f.userids, f.department, None)
    chosen = {f.channel} if f.channel is not None else set()
    return sorted(set(db.session.scalars(select(OverviewCurrent.state).where(*_where(OverviewCurrent, unfiltered))
                                         .distinct())) | chosen)


def refreshed_at(corp_id: str) -> dt.datetime | None:
    return db.session.scalar(select(OverviewState.current_refreshed_at).where(OverviewState.corp_id == corp_id))


def _moments(period: Period) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the period's China days, as aware datetimes (for the UTC timestamp columns)."""
    return china_day_start(period.first), china_day_start(period.last + dt.timedelta(days=1))


# Campaign delivery: the recipients' results, as the campaign page counts them (delivered out of those sent,
# i.e. everyone not excluded at planning), then why the others were not delivered.
MAX_CAMPAIGNS = 50
NOT_DELIVERED = (R_PLANNED, R_UNSENT, R_NOT_FRIEND, R_QUOTA, R_FAILED, R_CANCELLED)
DELIVERY_LABELS = {R_DELIVERED: "已送达", R_PLANNED: "等待成员发送", R_UNSENT: "成员未发送", R_NOT_FRIEND: "非好友",
                   R_QUOTA: "已达接收上限", R_FAILED: "发送失败", R_CANCELLED: "已取消", R_EXCLUDED: "已排除"}


def campaign_delivery(f: Filters) -> dict[str, Any]:
    """Customer campaigns (not chats) sent in the period, newest first (the latest `MAX_CAMPAIGNS`): per
    campaign, its recipients by result and the delivery rate (delivered / sent, in percent).

    The staff filter counts the recipients each of its members sends (a campaign of several senders
    counts for a department by its members' share; one with none of theirs is left out): one GROUP BY
    through the (campaign_id, sender_userid) index. Without one, each campaign reads the counts stored on
    it (kept by the campaigns' jobs as results come in: every minute while it is followed, and when it
    ends), so the page never counts a million recipients; only a campaign without stored counts yet
    (being planned or sent) counts its recipients."""
    start, end = _moments(f.period)
    c = Campaign
    in_period = [c.corp_id == f.corp_id, c.chat_type == "single", c.status != SCHEDULED, c.send_at >= start,
                 c.send_at < end]
    campaigns = db.session.execute(select(c.id, c.name, c.status, c.send_at, c.counts).where(*in_period)
                                   .order_by(c.send_at.desc(), c.id.desc()).limit(MAX_CAMPAIGNS + 1)).all()
    more = len(campaigns) > MAX_CAMPAIGNS
    campaigns = campaigns[:MAX_CAMPAIGNS]
    counts: dict[int, dict[str, int]] = {}
    live = []
    for cid, _, _, _, stored in campaigns:
        if f.userids is None and stored and "total" in stored:
            counts[cid] = {k: int(v) for k, v in stored.items() if k in DELIVERY_LABELS and isinstance(v, int)}
            counts[cid][R_EXCLUDED] = int(stored.get("excluded_total") or 0)
        else:
            live.append(cid)
    if live:
        r = CampaignRecipient
        query = select(r.campaign_id, r.status, func.count()).where(r.campaign_id.in_(live))
        if f.userids is not None:
            query = query.where(r.sender_userid.in_(sorted(f.userids)))
        for cid, status, n in db.session.execute(query.group_by(r.campaign_id, r.status)):
            counts.setdefault(int(cid), {})[str(status)] = int(n)
    rows = []
    for cid, name, status, send_at, _ in campaigns:
        by = counts.get(cid, {})
        excluded = by.get(R_EXCLUDED, 0)
        sent = sum(n for s, n in by.items() if s != R_EXCLUDED)
        if not sent and not excluded:
            continue  # cancelled before it was planned, or none of the filter's staff sent it
        delivered = by.get(R_DELIVERED, 0)
        rows.append({"id": cid, "name": name, "status": status, "send_at": send_at, "sent": sent,
                     "delivered": delivered, **{s: by.get(s, 0) for s in NOT_DELIVERED},
                     "not_delivered": sent - delivered, "excluded": excluded,
                     "rate": round(delivered * 100 / sent, 1) if sent else None})
    sent, delivered = sum(r["sent"] for r in rows), sum(r["delivered"] for r in rows)
    return {"campaigns": rows, "more": more, "shown_limit": MAX_CAMPAIGNS,
            "total": {"sent": sent, "delivered": delivered, "excluded": sum(r["excluded"] for r in rows),
                      **{s: sum(r[s] for r in rows) for s in NOT_DELIVERED},
                      "rate": round(delivered * 100 / sent, 1) if sent else None}}


# Handover outcomes, in the order a manager reads them: moved, on its way, then why not.
HANDOVER_OUTCOMES = ("done", "waiting", "queued", "refused", "limit", "no_record", "failed", "excluded")


def handover_outcomes(f: Filters) -> dict[str, Any]:
    """The customers of the handover jobs started in the period, by outcome, overall and per takeover
    colleague. The staff filter keeps the customers whose handing-over or taking-over colleague is one of
    its members."""
    start, end = _moments(f.period)
    j, hc = HandoverJob, HandoverCustomer
    where: list[ColumnElement[bool]] = [j.corp_id == f.corp_id, j.created_at >= start, j.created_at < end]
    if f.userids is not None:
        members = sorted(f.userids)
        where.append(or_(j.handover_userid.in_(members), hc.takeover_userid.in_(members)))
    per: dict[str, dict[str, int]] = {}
    overall = {s: 0 for s in HANDOVER_OUTCOMES}
    for takeover, status, n in db.session.execute(
            select(hc.takeover_userid, hc.status, func.count()).join(j, j.id == hc.job_id).where(*where)
            .group_by(hc.takeover_userid, hc.status)):
        if str(status) not in overall:
            continue  # a status this overview does not know yet
        overall[str(status)] += int(n)
        if takeover:
            per.setdefault(str(takeover), {s: 0 for s in HANDOVER_OUTCOMES})[str(status)] += int(n)
    jobs = int(db.session.scalar(select(func.count(func.distinct(hc.job_id))).join(j, j.id == hc.job_id)
                                 .where(*where)) or 0) if any(overall.values()) else 0
    names = staff_names(f.corp_id, per)
    takeovers: list[dict[str, Any]] = [{"userid": u, "name": names.get(u, u), "total": sum(by.values()), **by} for u, by in per.items()]
    takeovers.sort(key=lambda t: (-t["total"], -t["done"], t["name"]))
    return {"jobs": jobs, "total": sum(overall.values()),
            "outcomes": [{"status": s, "label": CUSTOMER_LABELS[s], "customers": overall[s]}
                         for s in HANDOVER_OUTCOMES],
            "takeovers": takeovers}


@dataclass(frozen=True)
class Section:
    """A chart section of the overview: its id (the CSV's name), title, and how to compute it."""

    id: str
    title: str
    compute: Callable[[Filters], Any]


SECTIONS: list[Section] = [
    Section("growth", "客户增长与流失", growth),
    Section("staff", "成员业绩", staff_table),
    Section("tags", "标签分布", tag_groups),
    Section("funnel", "阶段漏斗", funnel),
    Section("campaigns", "群发触达", campaign_delivery),
    Section("handover", "客户交接结果", handover_outcomes),
]


def overview(f: Filters, only: str | None = None) -> dict[str, Any]:
    """Everything the page and the API show for these filters (or one section, for its CSV)."""
    body: dict[str, Any] = {"from": f.period.first.isoformat(), "to": f.period.last.isoformat(),
                            "department": f.department, "channel": f.channel,
                            "refreshed_at": refreshed_at(f.corp_id)}
    for section in SECTIONS:
        if only is None or section.id == only:
            body[section.id] = section.compute(f)
    if only is None:
        body["figures"] = figures(f, body["growth"]["points"])
    return body


def section_rows(section: str, data: dict[str, Any]) -> list[list[Any]]:
    """A section's data as CSV rows (a header first), in Chinese, for the download of each chart."""
    if section == "growth":
        return [["时间", "新增", "流失", "净增"]] + [[p["label"], p["added"], p["lost"], p["net"]]
                                                 for p in data["growth"]["points"]]
    if section == "staff":
        return [["成员", "跟进中的客户", "新增", "流失", "跟进次数"]] + [
            [r["name"] + ("（已离职）" if r["resigned"] else ""), r["customers"], r["added"], r["lost"], r["followups"]]
            for r in data["staff"]]
    if section == "tags":
        return [["标签组", "标签", "客户数"]] + [[g["name"], t["name"], t["customers"]]
                                             for g in data["tags"] for t in g["tags"]]
    if section == "funnel":
        steps = data["funnel"]
        return ([["阶段", "当前处于该阶段", "到达该阶段及以后", "较上一阶段转化率"]]
                + [[s["stage"], s["current"], s["reached"], "" if s["rate"] is None else f"{s['rate']}%"]
                   for s in steps["steps"]]
                + [[s["stage"], s["current"], "", ""] for s in steps["lost"]]
                + [["未设置阶段", steps["unset"], "", ""]])
    if section == "campaigns":
        statuses = NOT_DELIVERED
        return ([["群发", "发送时间（北京时间）", "计划发送", "已送达", "送达率", "未送达",
                  *[DELIVERY_LABELS[s] for s in statuses], "已排除（未发送）"]]
                + [[c["name"], china_datetime(c["send_at"]), c["sent"], c["delivered"],
                    "" if c["rate"] is None else f"{c['rate']}%", c["not_delivered"], *[c[s] for s in statuses],
                    c["excluded"]] for c in data["campaigns"]["campaigns"]])
    if section == "handover":
        outcomes = data["handover"]["outcomes"]
        return ([["接替成员", "客户合计", *[o["label"] for o in outcomes]]]
                + [[t["name"], t["total"], *[t[o["status"]] for o in outcomes]] for t in data["handover"]["takeovers"]]
                + [["全部（含未分配接替成员的客户）", data["handover"]["total"], *[o["customers"] for o in outcomes]]])
    raise UserValueError("没有这个图表", field="section")
