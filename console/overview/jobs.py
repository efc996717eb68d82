"""The overview's pre-aggregates: refreshed every few minutes, and rebuilt in full once a night, two hours
after the nightly sync starts (the backstop described in `refresh.py`).

One job does both, so a refresh and a rebuild never run at once (they write the same rows): the run
after the nightly hour has passed is a full one.
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.interval import IntervalTrigger

from core.db import utcnow
from core.jobs import periodic
from core.settings import settings

from .refresh import refresh, state_of

REFRESH_MINUTES = 5
REBUILD_AFTER_SYNC = dt.timedelta(hours=2)


def rebuild_due(last_full: dt.datetime | None, now: dt.datetime, sync_hour: int) -> bool:
    """True when no full rebuild happened since the latest nightly rebuild time (server time) passed."""
    if last_full is None:
        return True
    local = now.astimezone()
    nightly = local.replace(hour=sync_hour, minute=0, second=0, microsecond=0) + REBUILD_AFTER_SYNC
    while nightly > local:
        nightly -= dt.timedelta(days=1)
    return last_full < nightly


@periodic("overview_refresh", lease=dt.timedelta(minutes=30),
          trigger=lambda conf: IntervalTrigger(minutes=REFRESH_MINUTES, start_date=utcnow() + dt.timedelta(seconds=20)))
def overview_refresh() -> None:
    """Recent days, new relations, and the customers as they are now (first run shortly after start)."""
    conf = settings()
    now = utcnow()
    full = rebuild_due(state_of(conf.WECOM_CORP_ID).full_rebuilt_at, now, conf.SCRM_SYNC_HOUR)
    refresh(conf.WECOM_CORP_ID, full=full, now=now)
