"""Scheduled jobs of tagging part 2: inactivity rules once a day, and tag jobs whose process died."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crm.jobs import periodic
from extensions import db, settings


@periodic("tag_rules_inactivity", trigger=lambda conf: CronTrigger(hour=(conf.SCRM_SYNC_HOUR + 3) % 24, minute=0),
          lease=dt.timedelta(hours=2), min_interval=dt.timedelta(hours=12))
def tag_rules_inactivity() -> None:
    """Rules triggered by "no follow-up for N days", evaluated once a day."""
    from .rules import run_inactivity

    run_inactivity(settings().WECOM_CORP_ID)
    db.session.commit()


@periodic("tag_jobs", trigger=lambda conf: IntervalTrigger(seconds=30), lease=dt.timedelta(minutes=30))
def tag_jobs() -> None:
    """Bulk edits and backfills not started by their request (or whose process died): run them."""
    from .service import run_pending_jobs

    run_pending_jobs(settings().WECOM_CORP_ID)
