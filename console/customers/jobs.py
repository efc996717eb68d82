"""Customer exports no process took (or whose process died) are run every 30 seconds; exports older than
a week are deleted nightly."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.jobs import periodic
from core.settings import settings

from .exports import purge_expired, run_pending


@periodic("customer_exports", trigger=lambda conf: IntervalTrigger(seconds=30), lease=dt.timedelta(hours=1))
def customer_exports() -> None:
    """Run the exports waiting to run."""
    run_pending(settings().WECOM_CORP_ID)


@periodic("customer_exports_purge", trigger=lambda conf: CronTrigger(hour=4, minute=30),
          lease=dt.timedelta(minutes=30), min_interval=dt.timedelta(hours=12))
def customer_exports_purge() -> None:
    """Delete the files of exports older than a week."""
    purge_expired(settings().WECOM_CORP_ID)
