"""Scheduled work of the campaigns: send what is due (every 30 s), follow what was sent (every minute),
and read the mass messages this product did not send, for the receive quota (every 10 minutes).

Each is a `core.jobs.periodic` job: locked in the database, so several processes never run one twice at
once. They commit as they go (a chunk of a plan, a task's results), so a crash loses at most the step it
was in, and the next run resumes from what was committed.
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.interval import IntervalTrigger

from core.db import utcnow
from core.jobs import periodic
from core.settings import settings
from wecom.client import contact_client

from .following import follow_due, scan_foreign
from .planning import corp_settings, quota_window
from .sending import dispatch_due


@periodic("campaigns_send", trigger=lambda conf: IntervalTrigger(seconds=30), lease=dt.timedelta(minutes=30))
def send_due() -> None:
    """Plan and send the campaigns whose time has come (and resume any interrupted)."""
    dispatch_due(settings().WECOM_CORP_ID, utcnow(), contact_client())


@periodic("campaigns_follow", trigger=lambda conf: IntervalTrigger(seconds=60), lease=dt.timedelta(minutes=15))
def follow() -> None:
    """Poll WeCom for confirmations and per-customer results; close campaigns that are over."""
    follow_due(settings().WECOM_CORP_ID, utcnow(), contact_client())


@periodic("campaigns_scan_wecom", trigger=lambda conf: IntervalTrigger(minutes=10), lease=dt.timedelta(minutes=10))
def scan_wecom() -> None:
    """Record who received mass messages this product did not send (they count against the quota)."""
    corp_id, now = settings().WECOM_CORP_ID, utcnow()
    scan_foreign(corp_id, quota_window(corp_settings(corp_id).quota_period, now)[0], now, contact_client())
