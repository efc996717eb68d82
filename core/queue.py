"""What every durable queue table shares (the inbox, the outbox, local tasks): claiming due rows with a
lease, backing off, giving back the rows of a worker that died, backlog figures, and waking the worker.

A queue table has `id`, `corp_id`, `status` ("pending" until done), `attempts` (claims so far),
`next_attempt_at`, `claimed_by` and `claimed_until` (the lease), and a deadline column that puts
urgent rows first (the inbox's `deadline`, the outbox's `not_after`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from typing import Any, Callable

from flask import Flask, current_app, has_app_context
from sqlalchemy import Table, and_, event as sa_event, func, or_, select, update

from core.db import db, rowcount, utcnow

log = logging.getLogger("scrm.core.queue")

RETRY_BASE = 2.0  # seconds before the first retry; doubles each attempt
RETRY_CAP = 600.0
WAKE_KEY = "scrm.queue.wake"
WAKE_ON_COMMIT = "scrm.queue.wake_on_commit"


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def claim(table: Table, urgent: Any, worker_id: str, limit: int, lease: float, *, urgent_only: bool = False) -> list[int]:
    """Claim up to `limit` due pending rows for `lease` seconds; commit; their ids, most urgent first.

    Rows with a deadline (`urgent`) come first, nearest deadline first, then the others oldest first.
    PostgreSQL: the candidate rows are locked with FOR UPDATE SKIP LOCKED, so concurrent claimers take
    disjoint rows without waiting. SQLite: the single UPDATE is atomic (SQLite serialises writers). A
    row stays claimed until its lease runs out, so a killed worker's rows come back by themselves;
    `attempts` counts claims, so a row that kills workers is capped.
    """
    now = utcnow()
    c = table.c
    due = and_(c.status == "pending", c.next_attempt_at <= now,
               or_(c.claimed_until.is_(None), c.claimed_until < now))
    if urgent_only:  # only rows with a deadline (a welcome message's 20 s)
        due = and_(due, urgent.is_not(None))
    candidates = select(c.id).where(due).order_by(urgent.is_(None), urgent, c.id).limit(limit)
    if is_postgres():
        # A CTE is evaluated once; an IN (subquery … SKIP LOCKED) may be re-run by the planner
        # and then claim more rows than asked for.
        picked = candidates.with_for_update(skip_locked=True).cte("claimable")
        stmt = update(table).where(c.id == picked.c.id)
    else:
        stmt = update(table).where(c.id.in_(candidates.scalar_subquery()), due)
    stmt = (stmt.values(claimed_by=worker_id, claimed_until=now + dt.timedelta(seconds=lease),
                        attempts=c.attempts + 1)
            .returning(c.id, urgent))
    try:
        far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        rows = sorted(db.session.execute(stmt), key=lambda r: (r[1] is None, r[1] or far, r[0]))
        ids = [row[0] for row in rows]
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def owned(model: Any, row_id: int, worker_id: str) -> Any:
    """The row is still pending and still claimed by this worker (the condition of every final UPDATE)."""
    return and_(model.id == row_id, model.status == "pending", model.claimed_by == worker_id)


def release_expired(*models: Any) -> int:
    """Clear the claims whose lease ran out (their worker died); they are due again. Commits."""
    now = utcnow()
    count = 0
    for model in models:
        result = db.session.execute(
            update(model).where(model.status == "pending", model.claimed_until < now)
            .values(claimed_by=None, claimed_until=None).execution_options(synchronize_session=False))
        count += rowcount(result)
    db.session.commit()
    if count:
        log.info("core.queue.claims-released count=%s", count)
    return count


def retry_delay(attempts: int, base: float = RETRY_BASE) -> float:
    """Exponential backoff with jitter: base, 2·base, 4·base … capped at RETRY_CAP seconds."""
    delay = min(RETRY_CAP, base * 2 ** max(0, attempts - 1))
    return float(delay + random.uniform(0, delay / 4))


def backlog(model: Any, created: Any, corp_id: str) -> dict[str, Any]:
    """Pending and failed counts and the age of the oldest pending row (0.0 when none)."""
    rows = db.session.execute(
        select(model.status, func.count(), func.min(created))
        .where(model.corp_id == corp_id, model.status.in_(("pending", "failed")))
        .group_by(model.status)
    ).all()
    stats: dict[str, Any] = {"pending": 0, "failed": 0, "oldest_pending_age_s": 0.0}
    for status, count, oldest in rows:
        stats[status] = int(count)
        if status == "pending" and oldest is not None:
            stats["oldest_pending_age_s"] = round(max(0.0, (utcnow() - oldest).total_seconds()), 3)
    return stats


def trouble(model: Any, finished: Any, corp_id: str, *, window: dt.timedelta) -> dict[str, Any]:
    """What is going wrong with a queue now: rows waiting to retry after an error (the other side is
    failing right now: WeCom answering 5xx or 45009) and rows failed for good within `window`, each
    with the latest error."""
    now = utcnow()
    retrying: dict[str, Any] = {"count": 0, "last_error": None}
    failed: dict[str, Any] = {"count": 0, "last_error": None}
    rows = db.session.execute(
        select(model.status, func.count(), func.max(model.id))
        .where(model.corp_id == corp_id, model.last_error.is_not(None),
               or_(and_(model.status == "pending", model.next_attempt_at > now - window),
                   and_(model.status == "failed", finished >= now - window)))
        .group_by(model.status)).all()
    for status, count, latest in rows:
        target = retrying if status == "pending" else failed
        target["count"] = int(count)
        error = db.session.scalar(select(model.last_error).where(model.id == latest))
        target["last_error"] = (error or "")[:200]
    return {"retrying": retrying, "failed_recently": failed}


# ---------------------------------------------------------------- waking the worker


def set_wake_hook(app: Flask, fn: Callable[[], None] | None) -> None:
    """Register (or clear, with None) what wakes this process's worker when new work is committed."""
    if fn is None:
        app.extensions.pop(WAKE_KEY, None)
    else:
        app.extensions[WAKE_KEY] = fn


def wake() -> None:
    """Run the wake hook now (if one is set): the worker starts at once instead of at its next poll."""
    if not has_app_context():
        return
    hook = current_app.extensions.get(WAKE_KEY)
    if hook is None:
        return
    try:
        hook()
    except Exception:  # the work is committed; a failed wake-up only delays it to the next poll
        log.exception("core.queue.wake-failed")


def wake_after_commit() -> None:
    """Ask for a wake-up once the current transaction commits (nothing if it rolls back)."""
    db.session.info[WAKE_ON_COMMIT] = True


def _after_commit(session: Any) -> None:
    if session.info.pop(WAKE_ON_COMMIT, False):
        wake()


def _after_rollback(session: Any, previous: Any) -> None:
    session.info.pop(WAKE_ON_COMMIT, None)


def install_wake_listener() -> None:
    """Install (once per process) the session listener that wakes the worker after a commit that queued work."""
    if not sa_event.contains(db.session, "after_commit", _after_commit):
        sa_event.listen(db.session, "after_commit", _after_commit)
        sa_event.listen(db.session, "after_soft_rollback", _after_rollback)


# ---------------------------------------------------------------- waking workers in other processes

CHANNEL = "scrm_work"  # see the migration a10b0c0d0e06


class WorkListener:
    """LISTEN for new work on PostgreSQL (a trigger NOTIFYs on every insert into a queue table) and
    call `on_work` for each notification, from a daemon thread with a connection of its own.

    A dropped connection is reopened with backoff (and `on_work` called once after, since a
    notification may have been missed meanwhile); the worker's slow poll covers the gap.
    """

    def __init__(self, url: str, on_work: Callable[[], None], *, name: str = "scrm-listen") -> None:
        self.url = url
        self.on_work = on_work
        self.name = name
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> "WorkListener":
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if failures:
                        self.on_work()
                    failures = 0
                    while not self._stop.is_set():
                        for _note in conn.notifies(timeout=1.0, stop_after=1):
                            self.on_work()
            except Exception as exc:  # the server restarted, the network dropped: listen again
                self.connected.clear()
                failures += 1
                log.warning("core.queue.listen-failed failures=%s error=%s", failures, exc)
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))


def listener_url(engine: Any) -> str | None:
    """A libpq URL for LISTEN on the app's database, or None when it is not PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return None
    return str(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
