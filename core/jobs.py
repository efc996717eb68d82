"""Scheduled jobs: declared next to their function, locked in the database by default.

    @periodic("nightly_sync", trigger=lambda conf: CronTrigger(hour=conf.SCRM_SYNC_HOUR),
              lease=dt.timedelta(hours=6), min_interval=dt.timedelta(hours=12))
    def nightly_sync() -> None: ...

`start_scheduler(app)` runs every registered job in an APScheduler 3 `BackgroundScheduler` (in
`flask worker`, or in the embedded worker). Each run first takes the job's row in `job_locks` with
one conditional UPDATE:

- `locked_until` is a lease: the job never runs twice at once across processes, and a crashed
  process's lock runs out by itself;
- `min_interval`: a job that already started within that interval does not start again, so a
  nightly job fired by several processes (each with its own scheduler) runs once that night. A job
  that declares none gets four fifths of its trigger's period (`once_per_period`).

A job is one unit of work: it flushes, and `run_job` commits when it returns (or rolls back when it
raises). A long job may commit in chunks itself (a page of a sync, a chunk of customers).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from core.db import db, rowcount, utcnow
from core.models import JobLock
from core.settings import Settings, settings

log = logging.getLogger("scrm.core.jobs")


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
    return rowcount(result) == 1


def release(corp_id: str, name: str, owner: str) -> None:
    """Give the lock back (only if we still hold it). Commits."""
    db.session.execute(update(JobLock).where(JobLock.corp_id == corp_id, JobLock.name == name,
                                             JobLock.locked_by == owner)
                       .values(locked_by=None, locked_until=None).execution_options(synchronize_session=False))
    db.session.commit()


def period(trigger: BaseTrigger) -> dt.timedelta | None:
    """The time between two firings of a trigger (None when it fires once or not at all)."""
    now = dt.datetime.now(dt.timezone.utc)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + dt.timedelta(microseconds=1)) if first else None
    return (second - first) if first and second else None


def once_per_period(spec: JobSpec, conf: Settings) -> dt.timedelta | None:
    """How soon after one start another process's scheduler may start the job again: the declared
    `min_interval`, else four fifths of the trigger's period. Every `flask worker` runs a scheduler,
    and each fires every job; this is what makes a job run once per period across all of them."""
    if spec.min_interval is not None:
        return spec.min_interval
    every = period(spec.trigger(conf))
    return every * 4 / 5 if every is not None else None


def run_job(app: Flask, name: str, owner: str) -> bool:
    """Run one job now if its lock can be taken, as one unit of work; True when it ran."""
    spec = JOBS[name]
    with app.app_context():
        corp_id = settings().WECOM_CORP_ID
        if not acquire(corp_id, name, owner, spec.lease, once_per_period(spec, settings())):
            log.info("core.jobs.skipped name=%s (locked or already run)", name)
            return False
        started = utcnow()
        try:
            spec.fn()
            db.session.commit()
            log.info("core.jobs.done name=%s seconds=%.1f", name, (utcnow() - started).total_seconds())
        except Exception:
            db.session.rollback()
            log.exception("core.jobs.failed name=%s", name)
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
    log.info("core.jobs.scheduler-started owner=%s jobs=%s", owner, sorted(JOBS))
    return scheduler
