"""Bulk tag jobs not started by their request, or whose process died, are run every 30 seconds."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.interval import IntervalTrigger

from core.jobs import periodic
from core.settings import settings

from .service import run_pending_jobs


@periodic("tag_jobs", trigger=lambda conf: IntervalTrigger(seconds=30), lease=dt.timedelta(minutes=30))
def tag_jobs() -> None:
    """Bulk edits and backfills not started by their request (or whose process died): run them."""
    run_pending_jobs(settings().WECOM_CORP_ID)
