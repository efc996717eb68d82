"""Rebuilding the overview's pre-aggregates from the customer tables (the worker's job, `jobs.py`).

The overview reads only the tables of `models.py`; this module is the only writer. Each refresh
recomputes, with set-based SQL (INSERT … SELECT, nothing loops over customers in Python):

- `overview_current` and `overview_tag_counts` in full, every time. They describe the customers as they
  are now, and a full recompute is what keeps them right whatever changed the source rows: a callback
  handler, the full sync's bulk UPDATEs, a bulk tag job, a rule, a merge of tags, a stage change.
  Cost: about 10 s a run at a million customers on PostgreSQL on two cores (`bench/overview.py` prints
  it), nearly all of it this part; nothing at all for a corp of a few thousand.
- `overview_daily` for a window of days: the last `RECENT_DAYS` China days (events are stamped with
  the time they happened, which the worker may apply hours later), extended back to the earliest day
  of any relation row inserted since the last refresh (the relation-id watermark: a full sync that
  brings in customers added two years ago rebuilds those days). A relation re-added after it was lost
  keeps its row but gets a new `added_at` and loses its `lost_at`, which rewrites two older days: a
  refresh that sees an active relation older than the watermark with an `added_at` newer than the last
  refresh rebuilds every day. The one path left is the full sync finding a relation it had marked lost
  alive again (it clears `lost_at` in place); the nightly full rebuild (`jobs.py`) heals it.
- `overview_monthly` for the months holding those days, summed from `overview_daily` (so the two agree
  by construction).

Definitions (the overview page says them in Chinese):

- added on day D: follow relations whose `added_at` falls on D (China time); a customer added by two
  staff members counts twice, once for each of them, as in WeCom's own statistics;
- lost on day D: follow relations that ended on D (`lost_at`), except handovers (reason
  "transferred": the customer stays with the corp);
- follow-ups on day D: notes written on D, under the writer and the channel of their relation;
- a customer "belongs" to their first active relation (earliest `added_at`): its staff member and its
  channel decide under which department and channel the customer, its stage and its tags are counted,
  so each customer counts once in the stage funnel and the tag distribution.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, and_, case, cast, delete, func, insert, literal, select, text, union_all
from sqlalchemy.sql.elements import ColumnElement

from core.db import db, utcnow
from core.time import CHINA, china_day_start
from crm.models import Customer, FollowRelation, FollowUp, TagAssignment
from tagging.segments.facets import enabled as facets_enabled
from tagging.segments.facets import facets

from .models import OverviewCurrent, OverviewDaily, OverviewMonthly, OverviewState, OverviewTagCount

log = logging.getLogger("scrm.console.overview")

RECENT_DAYS = 7
NOT_A_LOSS = ("transferred",)  # a handover moves the customer to a colleague; the corp keeps them


@dataclass
class RefreshStats:
    """What one refresh did (logged, and printed by `flask console overview-refresh`)."""

    full: bool
    first_day: dt.date | None
    last_day: dt.date
    daily_rows: int
    current_rows: int
    tag_rows: int
    seconds: float


def china_today(now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(CHINA).date()


def china_day(column: Any) -> ColumnElement[Any]:
    """The China calendar day of a UTC timestamp column, in SQL (stored naive UTC on both databases)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(column.op("+")(text("interval '8 hours'")), Date)
    return func.date(column, "+8 hours")


def state_of(corp_id: str) -> OverviewState:
    """The corp's refresh state (created on first use; flushes)."""
    row = db.session.scalar(select(OverviewState).where(OverviewState.corp_id == corp_id))
    if row is None:
        row = OverviewState(corp_id=corp_id, relation_watermark=0, rebuild_requested=False)
        db.session.add(row)
        db.session.flush()
    return row


# ---------------------------------------------------------------- daily events


def _events(corp_id: str, start: dt.datetime | None, end: dt.datetime | None) -> Any:
    """One row per event (day, userid, state, added, lost, followups) between two instants (None: open)."""
    def within(column: Any) -> list[ColumnElement[bool]]:
        return [c for c in ((column >= start) if start else None, (column < end) if end else None) if c is not None]

    fr = FollowRelation
    added = select(china_day(fr.added_at).label("day"), fr.userid, fr.state, literal(1).label("added"),
                   literal(0).label("lost"), literal(0).label("followups")).where(
        fr.corp_id == corp_id, fr.added_at.is_not(None), *within(fr.added_at))
    lost = select(china_day(fr.lost_at), fr.userid, fr.state, literal(0), literal(1), literal(0)).where(
        fr.corp_id == corp_id, fr.status != "active", fr.lost_at.is_not(None),
        func.coalesce(fr.lost_reason, "").not_in(NOT_A_LOSS), *within(fr.lost_at))
    notes = (select(china_day(FollowUp.created_at), FollowUp.userid, func.coalesce(fr.state, ""), literal(0),
                    literal(0), literal(1))
             .select_from(FollowUp).outerjoin(fr, and_(fr.customer_id == FollowUp.customer_id,
                                                       fr.userid == FollowUp.userid))
             .where(FollowUp.corp_id == corp_id, *within(FollowUp.created_at)))
    return union_all(added, lost, notes).subquery("events")


def rebuild_days(corp_id: str, first: dt.date | None, last: dt.date | None) -> int:
    """Recompute `overview_daily` for the China days first..last (None: unbounded); rows written."""
    start = china_day_start(first) if first else None
    end = china_day_start(last + dt.timedelta(days=1)) if last else None
    wipe = delete(OverviewDaily).where(OverviewDaily.corp_id == corp_id)
    if first:
        wipe = wipe.where(OverviewDaily.day >= first)
    if last:
        wipe = wipe.where(OverviewDaily.day <= last)
    db.session.execute(wipe.execution_options(synchronize_session=False))
    ev = _events(corp_id, start, end)
    rows = (select(literal(corp_id), ev.c.day, ev.c.userid, ev.c.state, func.sum(ev.c.added), func.sum(ev.c.lost),
                   func.sum(ev.c.followups))
            .group_by(ev.c.day, ev.c.userid, ev.c.state))
    db.session.execute(insert(OverviewDaily).from_select(
        ["corp_id", "day", "userid", "state", "added", "lost", "followups"], rows))
    return _count(OverviewDaily, OverviewDaily.corp_id == corp_id,
                  *([OverviewDaily.day >= first] if first else []), *([OverviewDaily.day <= last] if last else []))


def month_of(column: Any) -> ColumnElement[Any]:
    """The first day of a date column's month, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.date_trunc("month", column), Date)
    return func.strftime("%Y-%m-01", column)


def rebuild_months(corp_id: str, first: dt.date | None, last: dt.date | None) -> int:
    """Recompute `overview_monthly` for the months that hold first..last, from `overview_daily`."""
    start = first.replace(day=1) if first else None
    end = (last.replace(day=28) + dt.timedelta(days=4)).replace(day=1) if last else None  # the next month's 1st
    wipe = delete(OverviewMonthly).where(OverviewMonthly.corp_id == corp_id)
    days = [OverviewDaily.corp_id == corp_id]
    if start:
        wipe, days = wipe.where(OverviewMonthly.month >= start), days + [OverviewDaily.day >= start]
    if end:
        wipe, days = wipe.where(OverviewMonthly.month < end), days + [OverviewDaily.day < end]
    db.session.execute(wipe.execution_options(synchronize_session=False))
    month = month_of(OverviewDaily.day)
    rows = (select(literal(corp_id), month, OverviewDaily.userid, func.sum(OverviewDaily.added),
                   func.sum(OverviewDaily.lost), func.sum(OverviewDaily.followups))
            .where(*days).group_by(month, OverviewDaily.userid))
    db.session.execute(insert(OverviewMonthly).from_select(
        ["corp_id", "month", "userid", "added", "lost", "followups"], rows))
    return _count(OverviewMonthly, OverviewMonthly.corp_id == corp_id)


def _earliest_new_day(corp_id: str, watermark: int) -> dt.date | None:
    """The earliest event day of relation rows inserted after the watermark (a sync's old customers)."""
    fr = FollowRelation
    first = db.session.execute(select(func.min(fr.added_at), func.min(fr.lost_at))
                               .where(fr.corp_id == corp_id, fr.id > watermark)).one()
    moments = [m for m in first if m is not None]
    if not moments:
        return None
    moment = min(m if isinstance(m, dt.datetime) else dt.datetime.fromisoformat(str(m)) for m in moments)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(CHINA).date()


def _readded_since(corp_id: str, watermark: int, since: dt.datetime | None) -> bool:
    """True when an existing relation row was added again after `since` (its old days changed)."""
    if since is None:
        return False
    fr = FollowRelation
    found = db.session.scalar(select(fr.id).where(fr.corp_id == corp_id, fr.id <= watermark, fr.status == "active",
                                                  fr.added_at >= since).limit(1))
    return found is not None


# ---------------------------------------------------------------- current customers and tags


def _ranked(corp_id: str) -> Any:
    """Active relations with rn = 1 on each customer's first one (earliest added, then lowest id)."""
    fr = FollowRelation
    order = (fr.added_at.is_(None), fr.added_at, fr.id)
    return (select(fr.customer_id, fr.userid, fr.state,
                   func.row_number().over(partition_by=fr.customer_id, order_by=order).label("rn"))
            .where(fr.corp_id == corp_id, fr.status == "active").subquery("ranked"))


def _customer_tags(corp_id: str) -> Any:
    """(customer_id, tag_pk) for every tag a customer carries on an active relation, once each."""
    if facets_enabled():  # PostgreSQL: the facets row already holds them (kept by triggers)
        return (select(facets.c.customer_id, func.unnest(facets.c.tag_pks).label("tag_pk"))
                .where(facets.c.corp_id == corp_id, facets.c.followed.is_(True)).subquery("customer_tags"))
    ta, fr = TagAssignment, FollowRelation
    return (select(ta.customer_id, ta.tag_pk).distinct()
            .join(fr, fr.id == ta.relation_id)
            .where(ta.corp_id == corp_id, fr.status == "active").subquery("customer_tags"))


def rebuild_current(corp_id: str) -> tuple[int, int]:
    """Recompute `overview_current` and `overview_tag_counts` in full; (rows, tag rows) written."""
    db.session.execute(delete(OverviewCurrent).where(OverviewCurrent.corp_id == corp_id)
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(OverviewTagCount).where(OverviewTagCount.corp_id == corp_id)
                       .execution_options(synchronize_session=False))
    ranked = _ranked(corp_id)
    stage = func.coalesce(Customer.stage, "")
    rows = (select(literal(corp_id), ranked.c.userid, ranked.c.state, stage,
                   func.sum(case((ranked.c.rn == 1, 1), else_=0)), func.count())
            .select_from(ranked).join(Customer, Customer.id == ranked.c.customer_id)
            .group_by(ranked.c.userid, ranked.c.state, stage))
    db.session.execute(insert(OverviewCurrent).from_select(
        ["corp_id", "userid", "state", "stage", "customers", "relations"], rows))
    first = select(ranked.c.customer_id, ranked.c.userid, ranked.c.state).where(ranked.c.rn == 1).subquery("first")
    tags = _customer_tags(corp_id)
    tag_rows = (select(literal(corp_id), first.c.userid, first.c.state, tags.c.tag_pk, func.count())
                .select_from(tags).join(first, first.c.customer_id == tags.c.customer_id)
                .group_by(first.c.userid, first.c.state, tags.c.tag_pk))
    db.session.execute(insert(OverviewTagCount).from_select(
        ["corp_id", "userid", "state", "tag_pk", "customers"], tag_rows))
    return (_count(OverviewCurrent, OverviewCurrent.corp_id == corp_id),
            _count(OverviewTagCount, OverviewTagCount.corp_id == corp_id))


def _count(model: Any, *where: Any) -> int:
    """Rows written (INSERT … SELECT does not report them on every driver)."""
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# ---------------------------------------------------------------- the refresh


def _tune_session() -> None:
    """PostgreSQL: room to sort and hash a million relations in memory during this transaction."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '128MB'"))


def refresh(corp_id: str, *, full: bool = False, now: dt.datetime | None = None) -> RefreshStats:
    """Bring the corp's pre-aggregates up to date (see the module docstring); flushes, the job commits."""
    started = utcnow()
    now = now or started
    _tune_session()
    state = state_of(corp_id)
    top = int(db.session.scalar(select(func.max(FollowRelation.id)).where(FollowRelation.corp_id == corp_id)) or 0)
    full = (full or state.rebuild_requested or state.full_rebuilt_at is None
            or _readded_since(corp_id, state.relation_watermark, state.days_refreshed_at))
    last = china_today(now)
    first: dt.date | None = None
    if not full:
        first = last - dt.timedelta(days=RECENT_DAYS)
        if top > state.relation_watermark:
            newest = _earliest_new_day(corp_id, state.relation_watermark)
            first = min(first, newest) if newest else first
    daily = rebuild_days(corp_id, first, None if full else last)
    rebuild_months(corp_id, first, None if full else last)
    current, tagged = rebuild_current(corp_id)
    state.relation_watermark = max(top, state.relation_watermark)
    state.days_refreshed_at = state.current_refreshed_at = now
    if full:
        state.full_rebuilt_at, state.rebuild_requested = now, False
    db.session.flush()
    stats = RefreshStats(full=full, first_day=first, last_day=last, daily_rows=daily, current_rows=current,
                         tag_rows=tagged, seconds=(utcnow() - started).total_seconds())
    log.info("console.overview.refreshed corp=%s full=%s first=%s daily=%s current=%s tags=%s seconds=%.1f",
             corp_id, full, first, daily, current, tagged, stats.seconds)
    return stats


def request_rebuild(corp_id: str) -> None:
    """Ask the next refresh to rebuild every day (after a bulk load that bypassed the usual paths)."""
    state_of(corp_id).rebuild_requested = True
    db.session.flush()
