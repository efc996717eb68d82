"""Value tiers: RFM classification in SQL, thresholds, only changes written, the 客户价值 tag group mirror."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import Base, token

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def event(db_session: Any, base: Base, nick: str, kind: str, days_ago: float, amount: str | None = None) -> None:
    from tagging.lifecycle.models import BehaviorEvent

    n = db_session.query(BehaviorEvent).count()
    db_session.add(BehaviorEvent(corp_id=TEST_CORP_ID, event_id=f"t{n}", customer_id=base.customers[nick].id,
                                 type=kind, at=NOW - dt.timedelta(days=days_ago),
                                 amount=Decimal(amount) if amount else None))
    db_session.flush()


@pytest.fixture()
def rfm(base: Base, db_session: Any) -> Base:
    """a: two orders 1,200 in total, last 10 days ago → 高价值; b: one order 400 days ago, nothing since
    → 流失风险; c: a page view yesterday → 潜力; d: a page view 60 days ago → 待唤醒; gone: no events."""
    event(db_session, base, "a", "order", 10, "700")
    event(db_session, base, "a", "order", 100, "500")
    event(db_session, base, "b", "order", 400, "5000")
    event(db_session, base, "c", "page_view", 1)
    event(db_session, base, "d", "page_view", 60)
    db_session.commit()
    return base


def tiers_of(base: Base, db_session: Any) -> dict[str, str]:
    from tagging.lifecycle.models import ValueTier

    by_id = {c.id: n for n, c in base.customers.items()}
    return {by_id[v.customer_id]: v.tier for v in db_session.query(ValueTier)}


def test_classification(rfm: Base, db_session: Any) -> None:
    from tagging.lifecycle.models import ValueTier
    from tagging.lifecycle.tiers import compute_tiers

    stats = compute_tiers(TEST_CORP_ID, now=NOW)
    db_session.commit()
    assert tiers_of(rfm, db_session) == {"a": "高价值", "b": "流失风险", "c": "潜力", "d": "待唤醒"}
    assert stats["changed"] == 4 and stats["tiers"]["高价值"] == 1 and stats["tag_group"] is None
    a = db_session.query(ValueTier).filter_by(customer_id=rfm.customers["a"].id).one()
    assert (a.frequency, a.monetary, a.recency_days, a.active_days) == (2, Decimal("1200.00"), 10, 10)
    # nothing changed: nothing rewritten, figures refreshed
    again = compute_tiers(TEST_CORP_ID, now=NOW + dt.timedelta(days=1))
    db_session.commit()
    assert (again["changed"], again["unchanged"]) == (0, 4)
    db_session.refresh(a)
    assert a.recency_days == 11 and a.since == NOW


def test_time_moves_customers_between_tiers(rfm: Base, db_session: Any) -> None:
    from tagging.lifecycle.tiers import compute_tiers

    compute_tiers(TEST_CORP_ID, now=NOW)
    later = NOW + dt.timedelta(days=120)  # a's last order is now 130 days old, c's view 121
    stats = compute_tiers(TEST_CORP_ID, now=later)
    db_session.commit()
    assert tiers_of(rfm, db_session) == {"a": "流失风险", "b": "流失风险", "c": "待唤醒", "d": "待唤醒"}
    assert stats["changed"] == 2  # a and c moved; b and d stayed


def test_thresholds_are_configurable(rfm: Base, client: Any, db_session: Any) -> None:
    from tagging.lifecycle.tiers import compute_tiers

    admin = token(db_session, "admin")
    bad = client.put("/api/v1/tiers/thresholds", json={"high_min_amount": -1}, headers=admin)
    assert bad.status_code == 422
    assert client.put("/api/v1/tiers/thresholds", json={"colour": 1}, headers=admin).status_code == 422
    ok = client.put("/api/v1/tiers/thresholds", json={"high_min_amount": 2000}, headers=admin)
    assert ok.status_code == 200 and ok.get_json()["thresholds"]["high_min_amount"] == 2000
    compute_tiers(TEST_CORP_ID, now=NOW)
    db_session.commit()
    assert tiers_of(rfm, db_session)["a"] == "潜力"  # 1,200 spent is no longer enough
    body = client.get("/api/v1/tiers", headers=admin).get_json()
    assert body["tiers"] == {"高价值": 0, "潜力": 2, "待唤醒": 1, "流失风险": 1}


def test_tiers_feed_segments(rfm: Base, db_session: Any) -> None:
    from tagging.segments.service import compile_filter
    from tagging.lifecycle.tiers import compute_tiers

    compute_tiers(TEST_CORP_ID, now=NOW)
    db_session.commit()
    found = set(db_session.scalars(compile_filter(TEST_CORP_ID, {"tier": ["高价值", "流失风险"]})))
    assert found == {rfm.customers["a"].id, rfm.customers["b"].id}


def test_tier_tags_mirrored_through_the_outbox(rfm: Base, db_session: Any) -> None:
    from crm.models import Tag, TagAssignment, TagGroup
    from tagging.lifecycle.tiers import TIERS, compute_tiers
    from wecom.models import OutboxCommand

    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etg_value", name="客户价值")
    db_session.add(group)
    db_session.flush()
    for i, name in enumerate(TIERS):
        db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=f"et_value_{i}", group_pk=group.id, name=name))
    db_session.commit()
    stats = compute_tiers(TEST_CORP_ID, now=NOW)
    db_session.commit()
    # a (zhangsan), b (zhangsan, lisi), c (wangwu): 4 active relations; d has only a lost relation
    assert stats["tag_group"] == "客户价值" and stats["tagged_relations"] == 4
    commands = db_session.query(OutboxCommand).filter_by(kind="mark_tag").all()
    assert sorted((c.args["external_userid"], c.args["userid"], tuple(c.args["add_tag"])) for c in commands) == [
        ("wm_a", "zhangsan", ("et_value_0",)), ("wm_b", "lisi", ("et_value_3",)),
        ("wm_b", "zhangsan", ("et_value_3",)), ("wm_c", "wangwu", ("et_value_1",))]
    later = NOW + dt.timedelta(days=120)
    compute_tiers(TEST_CORP_ID, now=later)
    db_session.commit()
    value_pks = {t.id: t.name for t in db_session.query(Tag).filter_by(group_pk=group.id)}
    held = {(a.customer_id, value_pks[a.tag_pk]) for a in db_session.query(TagAssignment)
            if a.tag_pk in value_pks}
    c = rfm.customers
    assert held == {(c["a"].id, "流失风险"), (c["b"].id, "流失风险"), (c["c"].id, "待唤醒")}
    newest = db_session.query(OutboxCommand).order_by(OutboxCommand.id.desc()).first()
    assert newest.args["remove_tag"] and newest.args["add_tag"]


def test_nightly_job_is_registered_and_commits(rfm: Base, app: Any, db_session: Any) -> None:
    from core.jobs import JOBS, run_job

    assert "nightly_value_tiers" in JOBS
    assert run_job(app, "nightly_value_tiers", "test-owner") is True
    db_session.expire_all()
    assert len(tiers_of(rfm, db_session)) == 4
