"""The nightly drift heal, two hours after the nightly full sync starts."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger

from core.jobs import periodic
from core.settings import settings
from wecom.client import contact_client

from .service import run_report


@periodic("nightly_tag_drift",
          trigger=lambda conf: CronTrigger(hour=(conf.SCRM_SYNC_HOUR + 2) % 24, minute=0),
          lease=dt.timedelta(hours=3), min_interval=dt.timedelta(hours=12))
def nightly_tag_drift() -> None:
    """After the nightly full sync: find what still differs from WeCom, heal it, and record what was healed."""
    run_report(settings().WECOM_CORP_ID, contact_client(), do_heal=True, trigger="nightly")
