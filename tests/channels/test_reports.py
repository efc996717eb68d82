"""The attribution report's figures: added, kept after 7 and 30 days (of those old enough), lost (a
handover is not a loss) and the median days to loss, reached a stage, tiers, cost per kept customer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from channels.models import Channel
from channels.reports import report
from core.db import utcnow
from crm.models import Customer, FollowRelation
from tagging.lifecycle.models import ValueTier
from tagging.lifecycle.stages import ensure_stages
from tests.helpers import TEST_CORP_ID

C = TEST_CORP_ID


def _load(db_session: Any, now: dt.datetime) -> None:
    ensure_stages(C)
    # (state, days ago added, lost after N days or None, lost reason, stage, tier)
    people = [("expo", 40, None, None, "成交客户", "高价值"), ("expo", 40, 3, "del_follow_user", "潜在客户", None),
              ("expo", 40, 20, "del_external_contact", None, None), ("expo", 40, 5, "transferred", "意向客户", "潜力"),
              ("expo", 10, 1, "del_follow_user", None, None), ("expo", 2, None, None, "忠诚客户", None),
              ("web", 40, None, None, None, None), ("", 5, None, None, None, None)]
    db_session.execute(insert(Customer), [{"corp_id": C, "external_userid": f"wm{i:04d}", "name": f"客户{i}",
                                           "stage": p[4]} for i, p in enumerate(people)])
    ids = dict(db_session.execute(select(Customer.external_userid, Customer.id)).tuples().all())
    rows = []
    for i, (state, ago, lost_after, reason, _, _) in enumerate(people):
        added = now - dt.timedelta(days=ago)
        rows.append({"corp_id": C, "customer_id": ids[f"wm{i:04d}"], "userid": "zhangsan", "state": state,
                     "added_at": added, "status": "lost" if lost_after is not None else "active",
                     "lost_at": added + dt.timedelta(days=lost_after) if lost_after is not None else None,
                     "lost_reason": reason})
    db_session.execute(insert(FollowRelation), rows)
    db_session.execute(insert(ValueTier), [{"corp_id": C, "customer_id": ids[f"wm{i:04d}"], "tier": p[5]}
                                           for i, p in enumerate(people) if p[5]])
    db_session.add(Channel(corp_id=C, name="展会", state="expo", users=["zhangsan"], cost=Decimal("300"),
                           status="active"))
    db_session.commit()


def test_the_figures(db_session: Any) -> None:
    now = utcnow()
    _load(db_session, now)
    data = report(C, now - dt.timedelta(days=60), now + dt.timedelta(seconds=1), stage="意向客户", now=now)
    rows = {r["state"]: r for r in data["channels"]}
    expo = rows["expo"]
    assert expo["name"] == "展会" and expo["added"] == 6
    assert (expo["eligible_7"], expo["kept_7"]) == (5, 3)  # lost after 3 and after 1 day are not kept
    assert (expo["eligible_30"], expo["kept_30"]) == (4, 2)  # + lost after 20 days; transferred is kept
    assert expo["lost"] == 3 and expo["median_days_to_loss"] == 3.0
    assert expo["reached_stage"] == 3  # 意向客户, 成交客户, 忠诚客户
    assert expo["tiers"]["高价值"] == 1 and expo["tiers"]["潜力"] == 1
    assert expo["cost_per_kept"] == "150.00"  # 300 / 2 kept after 30 days
    assert rows["web"]["name"] == "web" and rows[""]["name"] == "未标记渠道"
    assert data["totals"]["added"] == 8
    recent = report(C, now - dt.timedelta(days=7), now + dt.timedelta(seconds=1), now=now)
    assert {r["state"]: r["added"] for r in recent["channels"]} == {"expo": 1, "": 1}
