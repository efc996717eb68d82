"""Scheduled work of the handovers: follow waiting customers to their end (every 3 minutes) and refresh the
resigned colleagues' waiting list (every 30 minutes).

Each is a `core.jobs.periodic` job, locked in the database (several processes never run one twice at once).
The poll commits per (handover, takeover) pair and reads nothing from WeCom while nothing is due; the refresh
reads WeCom's whole list first, then replaces the local copy in one transaction.
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.interval import IntervalTrigger

from core.db import utcnow
from core.jobs import periodic
from core.settings import settings
from wecom.client import contact_client

from .following import mend, poll_due
from .waiting import refresh_waiting


@periodic("handover_poll", trigger=lambda conf: IntervalTrigger(minutes=3), lease=dt.timedelta(minutes=30))
def poll() -> None:
    """Read transfer_result for the pairs whose takeover time has come; mend what an interrupted hook left."""
    corp_id, now = settings().WECOM_CORP_ID, utcnow()
    poll_due(corp_id, now, contact_client())
    mend(corp_id, now)


@periodic("handover_refresh", trigger=lambda conf: IntervalTrigger(minutes=30), lease=dt.timedelta(minutes=20))
def refresh() -> None:
    """Read the customers and chats of resigned colleagues that wait for a takeover."""
    refresh_waiting(settings().WECOM_CORP_ID, contact_client(), reason="schedule")
