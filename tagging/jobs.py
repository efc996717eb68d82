"""Scheduled jobs of tagging part 1: the nightly value tiers."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from crm.jobs import periodic
from extensions import settings

log = logging.getLogger("scrm.tagging")


@periodic("nightly_value_tiers",
          trigger=lambda conf: CronTrigger(hour=(conf.SCRM_SYNC_HOUR + 1) % 24, minute=30),
          lease=dt.timedelta(hours=4), min_interval=dt.timedelta(hours=12))
def nightly_value_tiers() -> dict[str, Any]:
    """Place customers in value tiers once a night, an hour and a half after the full sync starts."""
    from .tiers import compute_tiers

    return compute_tiers(settings().WECOM_CORP_ID, commit=True)
