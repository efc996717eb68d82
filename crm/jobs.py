"""Scheduled jobs of the customer base: the nightly full sync, and giving back the rows of dead workers.

Declared with `core.jobs.periodic` (locked in the database, one unit of work each).
"""

from __future__ import annotations

import datetime as dt
import logging

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.jobs import periodic
from core.models import Task
from core.queue import release_expired
from core.settings import settings
from wecom.client import contact_client
from wecom.models import InboxEvent, OutboxCommand

from .sync import FullSync, SyncBusy

log = logging.getLogger("scrm.crm.jobs")


# ---------------------------------------------------------------- the jobs


@periodic("nightly_sync", trigger=lambda conf: CronTrigger(hour=conf.SCRM_SYNC_HOUR, minute=0),
          lease=dt.timedelta(hours=6), min_interval=dt.timedelta(hours=12))
def nightly_sync() -> None:
    """The full reconcile with WeCom, once a night (SCRM_SYNC_HOUR, server local time)."""
    try:
        FullSync(contact_client(), settings().WECOM_CORP_ID).run()
    except SyncBusy as exc:
        log.info("crm.jobs.nightly-sync-busy %s", exc)


@periodic("sweep_claims", trigger=lambda conf: IntervalTrigger(seconds=60), lease=dt.timedelta(seconds=55))
def sweep_claims() -> None:
    """Put rows whose worker died (lease run out) back in their queues, visibly."""
    release_expired(InboxEvent, Task, OutboxCommand)
