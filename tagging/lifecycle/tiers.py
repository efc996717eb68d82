"""Value tiers: customers placed nightly in 高价值 / 潜力 / 待唤醒 / 流失风险 from their order events
(recency, frequency, monetary) and their activity (any event), classified in SQL.

The result is kept in `value_tiers` (segments read it through the `{"tier": [...]}` node) and
mirrored onto each active follow relation as a tag of the group "客户价值" (`tagging.mirror`): the
group and its tier tags are created in WeCom on the first run; afterwards the customers whose tier
changed are re-tagged, and the periodic mirror job catches up on the rest. Customers with no event
at all get no tier.

Rules, first match wins (thresholds per corp, `TaggingSetting` "tier_thresholds"):

    高价值   ≥ high_min_orders orders and ≥ high_min_amount spent in the last window_days,
             the last order within high_max_recency_days
    流失风险 has ordered, and no event of any kind for churn_days
    潜力     some event within active_days
    待唤醒   everyone else with events
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, case, func, select, update

from core.db import db, utcnow
from core.errors import UserValueError
from crm.models import Customer, is_provisional
from crm.service import audit

from .mirror import ensure_group, group_tags, reconcile
from .models import BehaviorEvent, ValueTier
from .stages import get_setting, put_setting

log = logging.getLogger("scrm.tagging")

TIERS = ("高价值", "潜力", "待唤醒", "流失风险")
TIER_GROUP = "客户价值"
THRESHOLDS_KEY = "tier_thresholds"
DEFAULT_THRESHOLDS: dict[str, int] = {
    "window_days": 365,
    "high_min_orders": 2,
    "high_min_amount": 1000,
    "high_max_recency_days": 90,
    "active_days": 30,
    "churn_days": 90,
}
CHUNK = 1000


def thresholds(corp_id: str) -> dict[str, int]:
    """The corp's thresholds (defaults for any not set)."""
    saved = get_setting(corp_id, THRESHOLDS_KEY, {}) or {}
    return {k: int(saved.get(k, v)) for k, v in DEFAULT_THRESHOLDS.items()}


def save_thresholds(corp_id: str, values: Any, actor: str) -> dict[str, int]:
    """Validate and store thresholds (admin); unknown keys and non-positive numbers are refused."""
    if not isinstance(values, dict):
        raise UserValueError("阈值应为 JSON 对象")
    unknown = sorted(set(values) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise UserValueError(f"不认识的阈值：{', '.join(unknown)}")
    merged = thresholds(corp_id)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 10**9:
            raise UserValueError(f"{key} 应为正整数")
        merged[key] = value
    if merged["churn_days"] < merged["active_days"]:
        raise UserValueError("churn_days（流失风险天数）不能小于 active_days（活跃天数）")
    put_setting(corp_id, THRESHOLDS_KEY, merged, actor)
    audit(corp_id, actor, "tiers.thresholds", "corp", corp_id, merged)
    return merged


def tier_query(corp_id: str, now: dt.datetime, limits: dict[str, int]) -> Any:
    """SELECT customer_id, tier, last_order_at, frequency, monetary, last_active_at — one row per customer
    with events, classified in SQL."""
    ev = BehaviorEvent
    window_start = now - dt.timedelta(days=limits["window_days"])
    is_order = ev.type == "order"
    in_window = is_order & (ev.at >= window_start)
    agg = (select(ev.customer_id.label("customer_id"),
                  func.max(case((is_order, ev.at))).label("last_order_at"),
                  func.count(case((in_window, ev.id))).label("frequency"),
                  func.coalesce(func.sum(case((in_window, ev.amount))), 0).cast(Numeric(14, 2)).label("monetary"),
                  func.max(ev.at).label("last_active_at"))
           .where(ev.corp_id == corp_id).group_by(ev.customer_id)).subquery("agg")
    tier = case(
        ((agg.c.frequency >= limits["high_min_orders"]) & (agg.c.monetary >= limits["high_min_amount"])
         & (agg.c.last_order_at >= now - dt.timedelta(days=limits["high_max_recency_days"])), TIERS[0]),
        (agg.c.last_order_at.is_not(None) & (agg.c.last_active_at < now - dt.timedelta(days=limits["churn_days"])),
         TIERS[3]),
        (agg.c.last_active_at >= now - dt.timedelta(days=limits["active_days"]), TIERS[1]),
        else_=TIERS[2])
    return select(agg.c.customer_id, tier.label("tier"), agg.c.last_order_at, agg.c.frequency, agg.c.monetary,
                  agg.c.last_active_at)


def _days(now: dt.datetime, moment: Any) -> int | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite hands back aggregated datetimes as text
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return max(0, int((now - moment).days))


def compute_tiers(corp_id: str, *, now: dt.datetime | None = None, commit: bool = False,
                  actor: str = "system:tiers") -> dict[str, Any]:
    """Place every customer with events in a tier; mirror changes to the "客户价值" tag group.

    Works in chunks of customer ids (keyset); with `commit=True` (the nightly job) each chunk is
    committed, otherwise the caller commits. Returns counts per tier, how many changed, and whether
    the tag group was found.
    """
    now = now or utcnow()
    limits = thresholds(corp_id)
    classified = tier_query(corp_id, now, limits).subquery("classified")
    ensure_group(corp_id, TIER_GROUP, TIERS, actor)
    live = [t for t in group_tags(corp_id, TIER_GROUP)[1].values() if not is_provisional(t.tag_id)]
    stats: dict[str, Any] = {"changed": 0, "unchanged": 0, "tagged_relations": 0,
                             "tag_group": TIER_GROUP if live else None, "tiers": {t: 0 for t in TIERS}}
    last = 0
    while True:
        rows = db.session.execute(
            select(classified, ValueTier.id.label("vt_id"), ValueTier.tier.label("old_tier"))
            .outerjoin(ValueTier, (ValueTier.customer_id == classified.c.customer_id) & (ValueTier.corp_id == corp_id))
            .where(classified.c.customer_id > last).order_by(classified.c.customer_id).limit(CHUNK)).all()
        if not rows:
            break
        last = rows[-1].customer_id
        unchanged, changed = [], []
        for r in rows:
            stats["tiers"][r.tier] += 1
            figures = {"recency_days": _days(now, r.last_order_at), "frequency": int(r.frequency),
                       "monetary": Decimal(str(r.monetary or 0)), "active_days": _days(now, r.last_active_at),
                       "computed_at": now}
            if r.vt_id is not None and r.old_tier == r.tier:
                unchanged.append({"id": r.vt_id, **figures})
            else:
                changed.append((r, figures))
        if unchanged:
            db.session.execute(update(ValueTier), unchanged)
        for r, figures in changed:
            if r.vt_id is None:
                db.session.add(ValueTier(corp_id=corp_id, customer_id=r.customer_id, tier=r.tier, since=now, **figures))
            else:
                db.session.execute(update(ValueTier).where(ValueTier.id == r.vt_id)
                                   .values(tier=r.tier, since=now, **figures))
        db.session.flush()
        if live and changed:
            stats["tagged_relations"] += reconcile(corp_id, TIER_GROUP, tier_wanted(corp_id), actor,
                                                   customer_ids=[r.customer_id for r, _ in changed],
                                                   limit=len(changed) * 10)
        stats["changed"] += len(changed)
        stats["unchanged"] += len(unchanged)
        if commit:
            db.session.commit()
    log.info("tagging.tiers.done corp=%s changed=%s unchanged=%s tiers=%s", corp_id, stats["changed"],
             stats["unchanged"], stats["tiers"])
    return stats


def tier_wanted(corp_id: str) -> Any:
    """(customer_id, name): the "客户价值" tag each customer with a tier should carry."""
    return select(ValueTier.customer_id.label("customer_id"), ValueTier.tier.label("name")).where(
        ValueTier.corp_id == corp_id)


def tier_counts(corp_id: str) -> dict[str, int]:
    """How many customers each tier holds now."""
    rows = db.session.execute(select(ValueTier.tier, func.count()).where(ValueTier.corp_id == corp_id)
                              .group_by(ValueTier.tier)).tuples().all()
    found = dict(rows)
    return {t: int(found.get(t, 0)) for t in TIERS}


def customer_tier(corp_id: str, customer: Customer) -> ValueTier | None:
    return db.session.scalar(select(ValueTier).where(ValueTier.corp_id == corp_id, ValueTier.customer_id == customer.id))
