"""Scheduled job of the auto-tagging rules: "no follow-up for N days" rules, evaluated once a day."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger

from core.jobs import periodic
from core.settings import settings

from .service import run_inactivity


@periodic("tag_rules_inactivity", trigger=lambda conf: CronTrigger(hour=(conf.SCRM_SYNC_HOUR + 3) % 24, minute=0),
          lease=dt.timedelta(hours=2), min_interval=dt.timedelta(hours=12))
def tag_rules_inactivity() -> None:
    """Rules triggered by "no follow-up for N days", evaluated once a day."""
    run_inactivity(settings().WECOM_CORP_ID)
