"""Scheduled jobs: declared next to their function, locked in the database by default.

`@periodic(name, trigger=…)` registers a job; `start_scheduler(app)` runs every registered job
in an APScheduler 3 `BackgroundScheduler` (in `flask worker`, or in the embedded worker).
Each run first takes the job's row in `job_locks` with one conditional UPDATE:

- `locked_until` is a lease: the job never runs twice at once across processes, and a crashed
  process's lock runs out by itself;
- `min_interval`: a job that already started within that interval does not start again, so a
  nightly job fired by several processes (each with its own scheduler) runs once that night.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db, settings, utcnow
from settings import Settings
from wecom.models import JobLock

log = logging.getLogger("scrm.crm.jobs")


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: Callable[[], Any]
    trigger: Callable[[Settings], BaseTrigger]
    lease: dt.timedelta
    min_interval: dt.timedelta | None


JOBS: dict[str, JobSpec] = {}


def periodic(name: str, *, trigger: Callable[[Settings], BaseTrigger], lease: dt.timedelta,
             min_interval: dt.timedelta | None = None) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Declare a scheduled job; it runs in an app context, under its lock (see module docstring)."""
    def decorate(fn: Callable[[], Any]) -> Callable[[], Any]:
        JOBS[name] = JobSpec(name, fn, trigger, lease, min_interval)
        return fn
    return decorate


# ---------------------------------------------------------------- the lock


def acquire(corp_id: str, name: str, owner: str, lease: dt.timedelta,
            min_interval: dt.timedelta | None = None) -> bool:
    """Take the job's lock for `lease` (and mark it started now); False if someone holds it or it
    ran within `min_interval`. Commits."""
    if db.session.scalar(select(JobLock.id).where(JobLock.corp_id == corp_id, JobLock.name == name)) is None:
        try:
            db.session.add(JobLock(corp_id=corp_id, name=name))
            db.session.commit()
        except IntegrityError:  # another process made it meanwhile
            db.session.rollback()
    now = utcnow()
    conditions = [JobLock.corp_id == corp_id, JobLock.name == name,
                  or_(JobLock.locked_until.is_(None), JobLock.locked_until < now)]
    if min_interval is not None:
        conditions.append(or_(JobLock.last_run_at.is_(None), JobLock.last_run_at <= now - min_interval))
    result = db.session.execute(update(JobLock).where(*conditions)
                                .values(locked_by=owner, locked_until=now + lease, last_run_at=now)
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def release(corp_id: str, name: str, owner: str) -> None:
    """Give the lock back (only if we still hold it). Commits."""
    db.session.execute(update(JobLock).where(JobLock.corp_id == corp_id, JobLock.name == name,
                                             JobLock.locked_by == owner)
                       .values(locked_by=None, locked_until=None).execution_options(synchronize_session=False))
    db.session.commit()


def run_job(app: Flask, name: str, owner: str) -> bool:
    """Run one job now if its lock can be taken; True when it ran."""
    spec = JOBS[name]
    with app.app_context():
        corp_id = settings().WECOM_CORP_ID
        if not acquire(corp_id, name, owner, spec.lease, spec.min_interval):
            log.info("crm.jobs.skipped name=%s (locked or already run)", name)
            return False
        started = utcnow()
        try:
            spec.fn()
            log.info("crm.jobs.done name=%s seconds=%.1f", name, (utcnow() - started).total_seconds())
        except Exception:
            db.session.rollback()
            log.exception("crm.jobs.failed name=%s", name)
        finally:
            release(corp_id, name, owner)
        return True


def start_scheduler(app: Flask, owner: str) -> BackgroundScheduler:
    """Start a background scheduler running every registered job (deterministic ids = job names)."""
    conf: Settings = app.extensions["scrm.settings"]
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": 3600})
    for spec in JOBS.values():
        scheduler.add_job(run_job, spec.trigger(conf), args=(app, spec.name, owner), id=spec.name,
                          name=spec.name, replace_existing=True)
    scheduler.start()
    log.info("crm.jobs.scheduler-started owner=%s jobs=%s", owner, sorted(JOBS))
    return scheduler


# ---------------------------------------------------------------- the jobs


@periodic("nightly_sync", trigger=lambda conf: CronTrigger(hour=conf.SCRM_SYNC_HOUR, minute=0),
          lease=dt.timedelta(hours=6), min_interval=dt.timedelta(hours=12))
def nightly_sync() -> None:
    """The full reconcile with WeCom, once a night (SCRM_SYNC_HOUR, server local time)."""
    from wecom.client import contact_client

    from .sync import FullSync, SyncBusy

    try:
        FullSync(contact_client(), settings().WECOM_CORP_ID).run()
    except SyncBusy as exc:
        log.info("crm.jobs.nightly-sync-busy %s", exc)


@periodic("sweep_claims", trigger=lambda conf: IntervalTrigger(seconds=60), lease=dt.timedelta(seconds=55))
def sweep_claims() -> None:
    """Put rows whose worker died (lease run out) back in the queue, visibly."""
    from wecom.service import release_expired_claims

    release_expired_claims()
