"""Scheduled work of the channels: reroute scheduled codes (every 5 minutes) and check the alerts
(hourly), and rebuild the attribution pre-aggregate (every 5 minutes). Each is a `core.jobs.periodic` job, locked in the database so several processes never run
one twice at once; each commits once at its end (`core.jobs.run_job`)."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.interval import IntervalTrigger

from core.db import utcnow
from core.jobs import periodic
from core.settings import settings
from wecom.client import contact_client

from .alerts import check_alerts
from .reports import refresh_stats
from .service import reroute_due
from .ways import refresh_qr_codes


@periodic("channels_reroute", trigger=lambda conf: IntervalTrigger(minutes=5), lease=dt.timedelta(minutes=5))
def reroute() -> None:
    """Codes with a schedule: route them to the staff on duty now (update_contact_way when it changed);
    join ways without their QR code: read it."""
    corp_id = settings().WECOM_CORP_ID
    reroute_due(corp_id, utcnow())
    refresh_qr_codes(corp_id, contact_client)  # join ways whose QR code could not be read at creation


@periodic("channels_alerts", trigger=lambda conf: IntervalTrigger(hours=1), lease=dt.timedelta(minutes=30))
def alerts() -> None:
    """No new customer for N days, a member near the limit or resigned, a high 7-day loss rate."""
    check_alerts(settings().WECOM_CORP_ID, utcnow())


@periodic("channels_stats", trigger=lambda conf: IntervalTrigger(minutes=5), lease=dt.timedelta(minutes=10))
def stats() -> None:
    """Rebuild the attribution pre-aggregate (`channels.reports.refresh_stats`)."""
    refresh_stats(settings().WECOM_CORP_ID)
