"""Attribution per channel and period, from the follow relations (`crm`): who came through which State,
(and, for a join way, from the group members who joined through its State: `_join_rows`),
who stayed, who left and how soon, who reached a chosen lifecycle stage, in which value tier they are,
and what each kept customer cost.

The unit is the follow relation (a customer × the staff member they added through the code), the unit
WeCom attributes: `follow_relations.state` is the State of the way the customer used, per relation, so
a customer keeps the channel they first came from and every later one. A relation ended by a handover
(`lost_reason = 'transferred'`) is not a loss: the customer stayed with the corp.

- added: relations added on the China days of [from, to) with that State;
- kept_7 / kept_30: of those added at least 7 (30) days before today (`eligible_7` / `eligible_30`, by
  China day), the ones not lost within 7 (30) days of being added;
- lost: lost since (any time up to now); `avg_days_to_loss`, `median_days_to_loss`;
- reached_stage: the customer's current stage is the chosen one or further down the funnel;
- tiers: per value tier (`tagging.lifecycle`), the relations whose customer is in it;
- cost_per_kept: the channel's cost / kept_30 (kept_7 while none is 30 days old).

A report must stay fast at a million relations, where even a bare GROUP BY over them takes most of a
second. So the figures come from a pre-aggregate, `channel_stats`: relations by China day added, State,
value tier and stage, with their losses, rebuilt set-based (one INSERT … SELECT … GROUP BY) by the job
every 5 minutes and by a report that finds it older than 15 minutes (so the figures may be up to that
old). A report is one GROUP BY over the period's stats rows, plus one over the period's lost relations for
the median days to loss (a partial index, `ix_follow_relations_lost_report`), plus the channels' names
and costs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import Date, Float, and_, case, cast, delete, func, insert, literal, select, text

from core.db import db, utcnow
from core.time import CHINA
from crm.models import Customer, FollowRelation, GroupChatMember, Stage
from crm.service import state_labels
from tagging.lifecycle.models import ValueTier
from tagging.lifecycle.tiers import TIERS

from .models import CONTACT, JOIN, Channel, ChannelStat, ChannelStatsRun

UNNAMED = "未标记渠道"
STALE_AFTER = dt.timedelta(minutes=15)  # the job rebuilds every 5 minutes; a report rebuilds past this


def _days_between(start: Any, end: Any) -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 86400.0
    return func.julianday(end) - func.julianday(start)


def _china_day(column: Any) -> Any:
    """The China calendar day of a UTC timestamp column (stored naive UTC on both databases)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(column.op("+")(text("interval '8 hours'")), Date)
    return func.date(column, "+8 hours")


# ---------------------------------------------------------------- the pre-aggregate


def refresh_stats(corp_id: str) -> int:
    """Rebuild the corp's `channel_stats` in one INSERT … SELECT … GROUP BY over its relations (flushes);
    the number of rows written. The corp's run row is locked first, so two rebuilds never interleave."""
    started = time.perf_counter()
    run = db.session.scalar(select(ChannelStatsRun).where(ChannelStatsRun.corp_id == corp_id).with_for_update())
    if run is None:
        run = ChannelStatsRun(corp_id=corp_id, refreshed_at=utcnow())
        db.session.add(run)
        db.session.flush()
    fr = FollowRelation
    lost = and_(fr.status != "active", func.coalesce(fr.lost_reason, "") != "transferred", fr.lost_at.is_not(None))
    days = _days_between(fr.added_at, fr.lost_at)
    if db.session.get_bind().dialect.name == "postgresql":  # interval arithmetic: cheaper than epoch numerics
        within_7 = (fr.lost_at - fr.added_at) < text("interval '7 days'")
        within_30 = (fr.lost_at - fr.added_at) < text("interval '30 days'")
    else:
        within_7, within_30 = days < 7, days < 30
    day = _china_day(fr.added_at)
    stage = func.coalesce(Customer.stage, "")
    assert len(TIERS) == 4, "channel_stats has four tier columns"
    source = (select(literal(corp_id), day, fr.state, stage, func.count(),
                     *[func.count().filter(ValueTier.tier == t) for t in TIERS], func.count().filter(lost),
                     func.count().filter(and_(lost, within_7)), func.count().filter(and_(lost, within_30)),
                     func.coalesce(func.sum(days).filter(lost), 0.0))
              .select_from(fr).join(Customer, Customer.id == fr.customer_id)
              .outerjoin(ValueTier, and_(ValueTier.customer_id == fr.customer_id, ValueTier.corp_id == corp_id))
              .where(fr.corp_id == corp_id, fr.added_at.is_not(None))
              .group_by(day, fr.state, stage))
    db.session.execute(delete(ChannelStat).where(ChannelStat.corp_id == corp_id))
    db.session.execute(insert(ChannelStat).from_select(
        ["corp_id", "day", "state", "stage", "added", "tier_1", "tier_2", "tier_3", "tier_4", "lost", "lost_7", "lost_30",
         "lost_days"], source))
    written = int(db.session.scalar(select(func.count()).select_from(ChannelStat)
                                    .where(ChannelStat.corp_id == corp_id)) or 0)
    run.refreshed_at, run.seconds, run.rows = utcnow(), round(time.perf_counter() - started, 3), written
    db.session.flush()
    return written


def ensure_fresh(corp_id: str, max_age: dt.timedelta = STALE_AFTER) -> dt.datetime:
    """Rebuild the pre-aggregate when it is missing or older than `max_age`; when it was built."""
    refreshed = db.session.scalar(select(ChannelStatsRun.refreshed_at).where(ChannelStatsRun.corp_id == corp_id))
    if refreshed is None or refreshed < utcnow() - max_age:
        refresh_stats(corp_id)
        refreshed = utcnow()
    return refreshed


def report(corp_id: str, start: dt.datetime, end: dt.datetime, *, stage: str | None = None,
           now: dt.datetime | None = None) -> dict[str, Any]:
    """The attribution report: one row per State (channel) with relations added on the China days of
    [start, end), read from the pre-aggregate (rebuilt first when stale)."""
    now = now or utcnow()
    refreshed = ensure_fresh(corp_id)
    today = now.astimezone(CHINA).date()
    first, last = start.astimezone(CHINA).date(), (end - dt.timedelta(microseconds=1)).astimezone(CHINA).date()
    st = ChannelStat
    ok7, ok30 = st.day <= today - dt.timedelta(days=7), st.day <= today - dt.timedelta(days=30)

    def total(column: Any, *conds: Any) -> Any:
        if conds:
            column = case((and_(*conds), column), else_=0)
        return func.coalesce(func.sum(column), 0)

    reached: list[str] = []
    if stage:
        stages = db.session.execute(select(Stage.name, Stage.position, Stage.is_lost)
                                    .where(Stage.corp_id == corp_id)).all()
        chosen = next((pos for name, pos, is_lost in stages if name == stage and not is_lost), None)
        if chosen is not None:
            reached = [name for name, pos, is_lost in stages if pos >= chosen and not is_lost]
    cols = [st.state.label("state"), total(st.added).label("added"),
            total(st.added, ok7).label("eligible_7"), total(st.lost_7, ok7).label("lost_7"),
            total(st.added, ok30).label("eligible_30"), total(st.lost_30, ok30).label("lost_30"),
            total(st.lost).label("lost"), total(st.lost_days).label("lost_days"),
            total(st.added, st.stage.in_(reached or [""])).label("reached_stage")]
    cols += [total(getattr(st, f"tier_{i + 1}")).label(f"tier_{i}") for i in range(len(TIERS))]
    rows = db.session.execute(select(*cols).where(st.corp_id == corp_id, st.day >= first, st.day <= last)
                              .group_by(st.state)).mappings().all()
    lo = dt.datetime.combine(first, dt.time(0), tzinfo=CHINA).astimezone(dt.timezone.utc)
    hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=CHINA).astimezone(dt.timezone.utc)
    medians = _medians(corp_id, lo, hi)
    states = [r["state"] for r in rows]
    names = state_labels(corp_id, states)
    channels = {c.state: c for c in db.session.scalars(select(Channel).where(Channel.corp_id == corp_id,
                                                                             Channel.state.in_(states or [""])))}
    out: list[dict[str, Any]] = []
    for r in rows:
        state = r["state"] or ""
        channel = channels.get(state)
        kept_7 = int(r["eligible_7"]) - int(r["lost_7"])
        kept_30 = int(r["eligible_30"]) - int(r["lost_30"])
        kept_basis = kept_30 if r["eligible_30"] else kept_7
        cost = channel.cost if channel is not None else None
        median = medians.get(state)
        out.append({
            "state": state, "kind": CONTACT,
            "name": names.get(state) or (channel.name if channel is not None else "") or (state if state else UNNAMED),
            "channel_id": channel.id if channel is not None else None,
            "added": int(r["added"]), "eligible_7": int(r["eligible_7"]), "kept_7": kept_7,
            "eligible_30": int(r["eligible_30"]), "kept_30": kept_30, "lost": int(r["lost"]),
            "kept_7_rate": _rate(kept_7, r["eligible_7"]), "kept_30_rate": _rate(kept_30, r["eligible_30"]),
            "avg_days_to_loss": _round(float(r["lost_days"]) / int(r["lost"]) if r["lost"] else None),
            "median_days_to_loss": _round(median),
            "reached_stage": int(r["reached_stage"]) if reached else None,
            "tiers": {tier: int(r[f"tier_{i}"]) for i, tier in enumerate(TIERS)},
            "cost": str(cost) if cost is not None else None,
            "cost_per_kept": str((Decimal(cost) / kept_basis).quantize(Decimal("0.01")))
            if cost is not None and kept_basis else None,
        })
    out += _join_rows(corp_id, lo, hi, today, reached if stage else [])
    out.sort(key=lambda row: (-row["added"], row["name"]))
    return {"from": lo.isoformat(), "to": hi.isoformat(), "stage": stage if reached else None,
            "channels": out, "totals": _totals(out), "refreshed_at": refreshed.isoformat()}


def join_members(corp_id: str, states: list[str], start: dt.datetime | None = None,
                 end: dt.datetime | None = None) -> list[tuple[str, dt.datetime, dt.datetime | None, str, str]]:
    """The customers (external members) who joined a chat through one of `states` (a join way's State,
    from `groupchat/get`), joined in [start, end): (state, joined, left or None, stage, tier)."""
    if not states:
        return []
    m = GroupChatMember
    query = (select(m.state, m.join_time, m.left_at, func.coalesce(Customer.stage, ""),
                    func.coalesce(ValueTier.tier, ""))
             .outerjoin(Customer, and_(Customer.corp_id == corp_id, Customer.external_userid == m.member_id))
             .outerjoin(ValueTier, and_(ValueTier.corp_id == corp_id, ValueTier.customer_id == Customer.id))
             .where(m.corp_id == corp_id, m.state.in_(states), m.type == 2, m.join_time.is_not(None)))
    if start is not None:
        query = query.where(m.join_time >= start)
    if end is not None:
        query = query.where(m.join_time < end)
    return [tuple(row) for row in db.session.execute(query).tuples()]  # type: ignore[misc]


def _join_rows(corp_id: str, start: dt.datetime, end: dt.datetime, today: dt.date,
               reached: list[str]) -> list[dict[str, Any]]:
    """Report rows of the join ways (「加入群聊」): the unit is a customer who joined one of its chats
    through it; "lost" is leaving the chat. Group members are few beside follow relations, so these rows
    are counted live rather than pre-aggregated."""
    channels = {c.state: c for c in db.session.scalars(select(Channel).where(Channel.corp_id == corp_id,
                                                                             Channel.kind == JOIN))}
    by_state: dict[str, list[tuple[Any, ...]]] = {state: [] for state in channels}
    for row in join_members(corp_id, list(channels), start, end):
        by_state[row[0]].append(row)
    out = []
    for state, rows in by_state.items():
        channel = channels[state]
        stay = [(joined, left) for _, joined, left, _, _ in rows]
        eligible_7 = [(j, lf) for j, lf in stay if j.astimezone(CHINA).date() <= today - dt.timedelta(days=7)]
        eligible_30 = [(j, lf) for j, lf in stay if j.astimezone(CHINA).date() <= today - dt.timedelta(days=30)]
        kept_7 = sum(1 for j, lf in eligible_7 if lf is None or lf - j >= dt.timedelta(days=7))
        kept_30 = sum(1 for j, lf in eligible_30 if lf is None or lf - j >= dt.timedelta(days=30))
        days = sorted((lf - j).total_seconds() / 86400 for j, lf in stay if lf is not None)
        n = len(days)
        median = (days[n // 2] if n % 2 else (days[n // 2 - 1] + days[n // 2]) / 2) if n else None
        kept_basis = kept_30 if eligible_30 else kept_7
        cost = channel.cost
        out.append({
            "state": state, "name": channel.name, "channel_id": channel.id, "kind": JOIN,
            "added": len(rows), "eligible_7": len(eligible_7), "kept_7": kept_7,
            "eligible_30": len(eligible_30), "kept_30": kept_30, "lost": n,
            "kept_7_rate": _rate(kept_7, len(eligible_7)), "kept_30_rate": _rate(kept_30, len(eligible_30)),
            "avg_days_to_loss": _round(sum(days) / n if n else None), "median_days_to_loss": _round(median),
            "reached_stage": sum(1 for r in rows if r[3] in reached) if reached else None,
            "tiers": {tier: sum(1 for r in rows if r[4] == tier) for tier in TIERS},
            "cost": str(cost) if cost is not None else None,
            "cost_per_kept": str((Decimal(cost) / kept_basis).quantize(Decimal("0.01")))
            if cost is not None and kept_basis else None,
        })
    return out


def _medians(corp_id: str, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
    """Median days to loss per State, over the period's lost relations only (a few percent of them):
    `percentile_cont` on PostgreSQL (an ordered-set aggregate, which would keep the main statement from
    running in parallel), the sorted durations on SQLite (which has no percentile function)."""
    fr = FollowRelation
    days = _days_between(fr.added_at, fr.lost_at)
    where = (fr.corp_id == corp_id, fr.added_at >= start, fr.added_at < end, fr.status != "active",
             func.coalesce(fr.lost_reason, "") != "transferred", fr.lost_at.is_not(None))
    if db.session.get_bind().dialect.name == "postgresql":
        return {state or "": float(m) for state, m in db.session.execute(
            select(fr.state, func.percentile_cont(0.5).within_group(cast(days, Float))).where(*where)
            .group_by(fr.state)).tuples()}
    rows = db.session.execute(select(fr.state, days).where(*where).order_by(fr.state, days)).all()
    by_state: dict[str, list[float]] = {}
    for state, value in rows:
        by_state.setdefault(state or "", []).append(float(value))
    out = {}
    for state, values in by_state.items():
        n = len(values)
        out[state] = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return out


def _rate(part: Any, whole: Any) -> float | None:
    return round(int(part) / int(whole), 4) if whole else None


def _round(value: Any) -> float | None:
    return round(float(value), 1) if value is not None else None


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("added", "eligible_7", "kept_7", "eligible_30", "kept_30", "lost")
    totals: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    totals["kept_7_rate"] = _rate(totals["kept_7"], totals["eligible_7"])
    totals["kept_30_rate"] = _rate(totals["kept_30"], totals["eligible_30"])
    return totals


CSV_COLUMNS = [("name", "渠道"), ("state", "渠道标识"), ("added", "新增客户"), ("kept_7", "7天留存"),
               ("kept_7_rate", "7天留存率"), ("kept_30", "30天留存"), ("kept_30_rate", "30天留存率"),
               ("lost", "流失"), ("median_days_to_loss", "流失中位天数"), ("reached_stage", "到达阶段"),
               ("cost", "成本（元）"), ("cost_per_kept", "每位留存客户成本（元）")]


def csv_filename(start: dt.datetime, end: dt.datetime) -> str:
    """channels-<first day>-<last day>.csv (China days of [start, end))."""
    first, last = start.astimezone(CHINA).date(), (end - dt.timedelta(microseconds=1)).astimezone(CHINA).date()
    return f"channels-{first.isoformat()}-{last.isoformat()}.csv"


def report_csv(data: dict[str, Any]) -> Iterator[str]:
    """The report as UTF-8 CSV (with a BOM, so spreadsheet software reads the Chinese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([label for _, label in CSV_COLUMNS] + [f"分层：{t}" for t in TIERS])
    yield "\ufeff" + buffer.getvalue()
    for row in data["channels"]:
        buffer.seek(0), buffer.truncate()
        writer.writerow([_cell(row[k]) for k, _ in CSV_COLUMNS] + [row["tiers"][t] for t in TIERS])
        yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas from names
