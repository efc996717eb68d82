"""Scheduled jobs of the lifecycle: the nightly value tiers, and the tag mirrors every ten minutes."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.jobs import periodic
from core.settings import settings

from .mirror import reconcile
from .stages import MIRROR_GROUP, ensure_mirror_group, mirror_enabled, stage_wanted
from .tiers import TIER_GROUP, compute_tiers, tier_wanted

log = logging.getLogger("scrm.tagging")


@periodic("nightly_value_tiers",
          trigger=lambda conf: CronTrigger(hour=(conf.SCRM_SYNC_HOUR + 1) % 24, minute=30),
          lease=dt.timedelta(hours=4), min_interval=dt.timedelta(hours=12))
def nightly_value_tiers() -> dict[str, Any]:
    """Place customers in value tiers once a night, an hour and a half after the full sync starts."""
    return compute_tiers(settings().WECOM_CORP_ID, commit=True)


@periodic("tag_mirrors", trigger=lambda conf: IntervalTrigger(minutes=10),
          lease=dt.timedelta(minutes=30), min_interval=dt.timedelta(minutes=5))
def tag_mirrors() -> dict[str, Any]:
    """Keep the "客户阶段" (when the stage mirror is on) and "客户价值" tag groups in step with stages and
    value tiers: create missing tags, then correct up to a batch of relations each."""
    corp_id = settings().WECOM_CORP_ID
    result = {"stages": 0, "tiers": 0}
    if mirror_enabled(corp_id):
        ensure_mirror_group(corp_id, "system:mirror")
        result["stages"] = reconcile(corp_id, MIRROR_GROUP, stage_wanted(corp_id), "system:mirror")
    result["tiers"] = reconcile(corp_id, TIER_GROUP, tier_wanted(corp_id), "system:mirror")
    return result
