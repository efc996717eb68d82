"""Local tasks: work a request (or a signal subscriber) asks for and the worker does once, afterwards.

    enqueue_task(corp_id, "rules.fire", {...})          # in the caller's transaction (flush only)
    register_task(app, "rules.fire", fire_from_task)     # in create_app: the kind → handler table

The worker claims due tasks (a lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL) and runs
`process_task`: the handler and the status change commit together or not at all, so a task is
applied exactly once, even across `kill -9`. A handler flushes, never commits; it raises to have the
task retried (a database error, or an exception whose `transient` attribute is true: a WeCom outage)
or failed (anything else, kept with its error for `flask tasks replay`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Callable, Literal, cast

from flask import Flask, current_app
from sqlalchemy import Table, select, update
from sqlalchemy.exc import DBAPIError

from core.db import db, rowcount, utcnow
from core.models import Task
from core.queue import RETRY_BASE, backlog, claim, owned, retry_delay, wake_after_commit

log = logging.getLogger("scrm.core.tasks")

TaskHandler = Callable[[Task], None]
HANDLERS_KEY = "scrm.tasks.handlers"
MAX_ATTEMPTS = 8

Outcome = Literal["done", "retry", "failed", "skipped"]


def register_task(app: Flask, kind: str, fn: TaskHandler) -> None:
    """Make `fn` the handler of tasks of `kind` in `app`; a different function for a kind is a wiring mistake."""
    table: dict[str, TaskHandler] = app.extensions.setdefault(HANDLERS_KEY, {})
    if kind in table and table[kind] is not fn:
        raise ValueError(f"a handler for task {kind!r} is already registered: {table[kind]!r}")
    table[kind] = fn


def task_handler(kind: str) -> TaskHandler | None:
    handlers: dict[str, TaskHandler] = current_app.extensions.get(HANDLERS_KEY, {})
    return handlers.get(kind)


def enqueue_task(corp_id: str, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
                 delay: dt.timedelta | None = None) -> Task:
    """Add a task in the caller's transaction (flush only); the worker is woken after the commit.

    While a task with the same `dedupe_key` is pending in this corp, that task is returned instead.
    """
    json.dumps(payload)  # a TypeError now, not a failed task later
    if dedupe_key:
        existing = db.session.scalar(select(Task).where(Task.corp_id == corp_id, Task.dedupe_key == dedupe_key,
                                                        Task.status == "pending"))
        if existing is not None:
            return existing
    task = Task(corp_id=corp_id, kind=kind, payload=dict(payload), dedupe_key=dedupe_key, status="pending",
                attempts=0, next_attempt_at=utcnow() + (delay or dt.timedelta(0)))
    db.session.add(task)
    db.session.flush()
    wake_after_commit()
    log.debug("core.tasks.enqueued id=%s kind=%s", task.id, kind)
    return task


def claim_tasks(worker_id: str, limit: int = 10, lease: float = 60.0) -> list[int]:
    table = cast(Table, Task.__table__)
    return claim(table, table.c.deadline, worker_id, limit, lease)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) or bool(getattr(exc, "transient", False))


def process_task(task_id: int, worker_id: str, *, retry_base: float = RETRY_BASE) -> Outcome:
    """Run one claimed task: its handler and its status change commit together, or neither."""
    task = db.session.get(Task, task_id, populate_existing=True)
    if task is None or task.status != "pending" or task.claimed_by != worker_id:
        db.session.rollback()
        return "skipped"
    handler = task_handler(task.kind)
    attempts, kind = task.attempts, task.kind
    try:
        if handler is None:
            raise LookupError(f"no handler is registered for task kind {kind!r}")
        handler(task)
        db.session.flush()
        result = db.session.execute(
            update(Task).where(owned(Task, task_id, worker_id))
            .values(status="done", done_at=utcnow(), last_error=None, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False))
        if rowcount(result) != 1:
            db.session.rollback()
            log.warning("core.tasks.claim-lost id=%s worker=%s", task_id, worker_id)
            return "skipped"
        db.session.commit()
        return "done"
    except Exception as exc:
        db.session.rollback()
        retry = _retryable(exc) and attempts < MAX_ATTEMPTS
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if retry:
            values: dict[str, Any] = {"next_attempt_at": utcnow() + dt.timedelta(seconds=retry_delay(attempts, retry_base))}
            log.info("core.tasks.retry id=%s kind=%s attempts=%s error=%s", task_id, kind, attempts, error)
        else:
            values = {"status": "failed", "done_at": utcnow()}
            log.warning("core.tasks.failed id=%s kind=%s attempts=%s error=%s", task_id, kind, attempts, error,
                        exc_info=not isinstance(exc, (DBAPIError, LookupError)))
        db.session.execute(update(Task).where(owned(Task, task_id, worker_id))
                           .values(last_error=error, claimed_by=None, claimed_until=None, **values)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return "retry" if retry else "failed"


def task_stats(corp_id: str) -> dict[str, Any]:
    """Backlog figures of the task queue for /healthz."""
    return backlog(Task, Task.created_at, corp_id)


def replay_tasks(corp_id: str) -> int:
    """Put every failed task back to pending (the caller commits); how many."""
    result = db.session.execute(
        update(Task).where(Task.corp_id == corp_id, Task.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), last_error=None, done_at=None,
                claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False))
    return rowcount(result)
