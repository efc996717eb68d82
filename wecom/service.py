"""State changes of the WeCom layer: the callback inbox and the outbox, and their claiming.

`store_event` is the only write of the callback path: one short transaction, nothing slow, no
call to WeCom. The worker (crm) picks pending rows up afterwards; it may register a wake hook
with `set_wake_hook` so it starts at once instead of at its next poll.

The outbox: `enqueue` adds a command in the caller's transaction (flush only); after that
transaction commits, the wake hook runs (a session `after_commit` listener, see
`wake_after_commit`). The worker claims due rows with `claim_events` / `claim_commands` (a lease:
`claimed_by`, `claimed_until`; `FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic UPDATE on
SQLite), then runs `process_event` (handler + status change in ONE transaction) and
`process_command` (call WeCom, then mark done or failed and run the kind's after-hooks).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
from typing import Any, Callable, Literal

from flask import Flask, current_app, has_app_context
from sqlalchemy import Table, and_, event as sa_event, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from extensions import db, utcnow

from .dispatch import handler_for, outbox_hooks
from .models import InboxEvent, OutboxCommand

log = logging.getLogger("scrm.wecom")

WAKE_KEY = "scrm.wecom.wake"


def payload_hash(plaintext: str) -> str:
    """SHA-256 of the whole decrypted plaintext: the inbox's idempotency key (with corp_id)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def event_kind(data: dict[str, Any]) -> tuple[str, str]:
    """(Event, ChangeType) of parsed callback fields; InfoType/MsgType stand in for a missing Event."""
    event = data.get("Event") or data.get("InfoType") or data.get("MsgType") or ""
    change_type = data.get("ChangeType") or ""
    return (str(event)[:64], str(change_type)[:64])


def set_wake_hook(app: Flask, fn: Callable[[], None] | None) -> None:
    """Register (or clear, with None) the callable run after a new pending event is committed."""
    if fn is None:
        app.extensions.pop(WAKE_KEY, None)
    else:
        app.extensions[WAKE_KEY] = fn


def _upsert(values: dict[str, Any]) -> Any:
    """INSERT …, or on the (corp_id, payload_hash) conflict count one more duplicate; atomic.

    One statement on both engines (ON CONFLICT DO UPDATE): under concurrent deliveries of the same
    payload PostgreSQL makes the loser wait for the winner's row and then update it, so there is
    one row, every repeat is counted, and no IntegrityError reaches the request.
    """
    table = InboxEvent.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.corp_id, table.c.payload_hash],
        set_={"duplicates": table.c.duplicates + 1},
    ).returning(table.c.id, table.c.duplicates)
    return db.session.execute(stmt).one()


WELCOME_WINDOW = dt.timedelta(seconds=20)  # a WelcomeCode is valid 20 s (wecom-api.md §7.6)


def event_deadline(data: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    """An event carrying a WelcomeCode must be handled within WeCom's 20 s window."""
    if not data.get("WelcomeCode"):
        return None
    try:
        created = dt.datetime.fromtimestamp(int(data.get("CreateTime") or 0), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        created = now
    return min(created, now) + WELCOME_WINDOW if created.year > 2000 else now + WELCOME_WINDOW


def store_event(corp_id: str, plaintext: str, data: dict[str, Any]) -> tuple[InboxEvent, bool]:
    """Store one decrypted callback in the inbox and commit; (row, True) if it is new.

    A repeat of a payload already stored (WeCom retries) is counted on the existing row
    (`duplicates += 1`, logged as `wecom.callback.duplicate`) and returns (row, False).
    An event with no registered handler is stored as `ignored`. After the commit, the wake hook
    (if any) is called for a new pending event.
    """
    event, change_type = event_kind(data)
    now = utcnow()
    handled = handler_for(event, change_type) is not None
    values = {
        "corp_id": corp_id,
        "payload_hash": payload_hash(plaintext),
        "event": event,
        "change_type": change_type,
        "payload": plaintext,
        "data": data,
        "received_at": now,
        "duplicates": 0,
        "status": "pending" if handled else "ignored",
        "attempts": 0,
        "next_attempt_at": now if handled else None,
        "processed_at": None if handled else now,
        "deadline": event_deadline(data, now) if handled else None,
    }
    try:
        row_id, duplicates = _upsert(values)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    created = duplicates == 0
    row = db.session.get(InboxEvent, row_id)
    assert row is not None
    if created:
        log.info("wecom.callback.stored id=%s event=%s change_type=%s status=%s",
                 row.id, event, change_type, row.status)
        if row.status == "pending":
            _wake()
    else:
        log.info("wecom.callback.duplicate id=%s event=%s change_type=%s duplicates=%s",
                 row.id, event, change_type, duplicates)
    return row, created


def _wake() -> None:
    hook = current_app.extensions.get(WAKE_KEY)
    if hook is None:
        return
    try:
        hook()
    except Exception:  # the event is committed; a failed wake-up only delays it to the next poll
        log.exception("wecom.callback.wake-failed")


def _backlog(model: Any, created: Any, corp_id: str) -> dict[str, Any]:
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


def inbox_stats(corp_id: str) -> dict[str, Any]:
    """Backlog figures of the inbox for /healthz (see `_backlog`)."""
    return _backlog(InboxEvent, InboxEvent.received_at, corp_id)


def wake() -> None:
    """Run the wake hook now (if one is set): the worker starts at once instead of at its next poll."""
    _wake()


# ---------------------------------------------------------------- outbox: enqueue

CLIENTS = ("contact", "agent")
WAKE_ON_COMMIT = "scrm.wecom.wake_on_commit"


def enqueue(corp_id: str, kind: str, method: str, args: dict[str, Any], *, client: str = "contact",
            relation_id: int | None = None, dedupe_key: str | None = None,
            not_after: dt.datetime | None = None) -> OutboxCommand:
    """Add a command for the worker to send to WeCom, in the caller's transaction (flush only).

    `method` is a `WeComClient` method called as `method(**args)` on the `client` ("contact" or
    "agent"). While a command with the same `dedupe_key` is pending in this corp, that command is
    returned instead of adding another. `not_after` is a deadline: past it the command is failed
    "expired" and never sent. The caller commits; the worker is woken after that commit.
    """
    from .client import WeComClient

    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, got {client!r}")
    if method.startswith("_") or not callable(getattr(WeComClient, method, None)):
        raise ValueError(f"{method!r} is not a WeComClient method")
    json.dumps(args)  # a TypeError now, not a failed command later
    if not_after is not None and not_after.tzinfo is None:
        raise ValueError("not_after must be an aware UTC datetime")
    if dedupe_key:
        existing = db.session.scalar(select(OutboxCommand).where(
            OutboxCommand.corp_id == corp_id, OutboxCommand.dedupe_key == dedupe_key,
            OutboxCommand.status == "pending"))
        if existing is not None:
            log.info("wecom.outbox.deduped id=%s kind=%s key=%s", existing.id, kind, dedupe_key)
            return existing
    command = OutboxCommand(corp_id=corp_id, kind=kind, client=client, method=method, args=dict(args),
                            relation_id=relation_id, dedupe_key=dedupe_key or None, not_after=not_after,
                            status="pending", attempts=0, next_attempt_at=utcnow())
    db.session.add(command)
    db.session.flush()
    db.session.info[WAKE_ON_COMMIT] = True
    log.info("wecom.outbox.enqueued id=%s kind=%s method=%s relation=%s", command.id, kind, method, relation_id)
    return command


def _after_commit(session: Any) -> None:
    if session.info.pop(WAKE_ON_COMMIT, False) and has_app_context():
        _wake()


def _after_rollback(session: Any) -> None:
    session.info.pop(WAKE_ON_COMMIT, None)


def wake_after_commit() -> None:
    """Install (once per process) the session listener that wakes the worker after a commit that enqueued."""
    if not sa_event.contains(db.session, "after_commit", _after_commit):
        sa_event.listen(db.session, "after_commit", _after_commit)
        sa_event.listen(db.session, "after_soft_rollback", lambda session, previous: _after_rollback(session))


def find_command(corp_id: str, dedupe_key: str) -> OutboxCommand | None:
    """The latest command with this dedupe key, whatever its status."""
    return db.session.scalar(select(OutboxCommand).where(OutboxCommand.corp_id == corp_id,
                                                         OutboxCommand.dedupe_key == dedupe_key)
                             .order_by(OutboxCommand.id.desc()).limit(1))


def pending_commands(corp_id: str, relation_ids: list[int]) -> list[OutboxCommand]:
    """Pending commands that change these relations, oldest first."""
    if not relation_ids:
        return []
    out: list[OutboxCommand] = []
    for i in range(0, len(relation_ids), 500):
        out += db.session.scalars(select(OutboxCommand).where(
            OutboxCommand.corp_id == corp_id, OutboxCommand.status == "pending",
            OutboxCommand.relation_id.in_(relation_ids[i:i + 500])).order_by(OutboxCommand.id))
    return out


def pending_relation_ids(corp_id: str, relation_ids: list[int]) -> set[int]:
    """Of these relations, those with a command still waiting to reach WeCom (the sync protector)."""
    found: set[int] = set()
    for i in range(0, len(relation_ids), 500):
        found.update(db.session.scalars(select(OutboxCommand.relation_id).distinct().where(
            OutboxCommand.corp_id == corp_id, OutboxCommand.status == "pending",
            OutboxCommand.relation_id.in_(relation_ids[i:i + 500]))))
    return found


def outbox_stats(corp_id: str) -> dict[str, Any]:
    """Backlog figures of the outbox for /healthz (see `_backlog`)."""
    return _backlog(OutboxCommand, OutboxCommand.created_at, corp_id)


def replay_events(corp_id: str, *, failed: bool = False, ids: list[int] | None = None) -> int:
    """Put inbox rows back to pending (all failed ones, and/or the given ids whatever their status);
    the caller commits. Returns how many rows were put back."""
    if not failed and not ids:
        return 0
    cond = [InboxEvent.corp_id == corp_id]
    picks = []
    if failed:
        picks.append(InboxEvent.status == "failed")
    if ids:
        picks.append(InboxEvent.id.in_(ids))
    now = utcnow()
    result = db.session.execute(
        update(InboxEvent).where(*cond, or_(*picks))
        .values(status="pending", attempts=0, next_attempt_at=now, last_error=None, processed_at=None,
                claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False))
    count = int(result.rowcount or 0)
    log.info("wecom.inbox.replayed count=%s failed=%s ids=%s", count, failed, ids)
    return count


# ---------------------------------------------------------------- claiming and processing

INBOX_MAX_ATTEMPTS = 8
OUTBOX_MAX_ATTEMPTS = 10
RETRY_BASE = 2.0  # seconds before the first retry; doubles each attempt
RETRY_CAP = 600.0

Outcome = Literal["done", "retry", "failed", "ignored", "skipped"]


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _claim(table: Table, urgent: Any, worker_id: str, limit: int, lease: float) -> list[int]:
    """Claim up to `limit` due pending rows for `lease` seconds; commit; their ids.

    Rows with a deadline (`urgent`: the inbox's `deadline`, the outbox's `not_after`) come first,
    nearest deadline first, then the others oldest first.

    PostgreSQL: the candidate rows are locked with FOR UPDATE SKIP LOCKED, so concurrent
    claimers take disjoint rows without waiting. SQLite: the single UPDATE is atomic (SQLite
    serialises writers). A row stays claimed until its lease runs out, so a killed worker's rows
    come back by themselves; `attempts` counts claims, so a row that kills workers is capped.
    """
    now = utcnow()
    c = table.c
    due = and_(c.status == "pending", c.next_attempt_at <= now,
               or_(c.claimed_until.is_(None), c.claimed_until < now))
    candidates = select(c.id).where(due).order_by(urgent.is_(None), urgent, c.id).limit(limit)
    if _is_postgres():
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


def claim_events(worker_id: str, limit: int = 10, lease: float = 60.0) -> list[int]:
    """Claim due pending inbox rows (see `_claim`)."""
    return _claim(InboxEvent.__table__, InboxEvent.__table__.c.deadline, worker_id, limit, lease)


def claim_commands(worker_id: str, limit: int = 10, lease: float = 60.0) -> list[int]:
    """Claim due pending outbox commands (see `_claim`)."""
    return _claim(OutboxCommand.__table__, OutboxCommand.__table__.c.not_after, worker_id, limit, lease)


def release_expired_claims() -> int:
    """Clear the claims whose lease ran out (their worker died); they are due again. Commits."""
    now = utcnow()
    count = 0
    for model in (InboxEvent, OutboxCommand):
        result = db.session.execute(
            update(model).where(model.status == "pending", model.claimed_until < now)
            .values(claimed_by=None, claimed_until=None).execution_options(synchronize_session=False))
        count += int(result.rowcount or 0)
    db.session.commit()
    if count:
        log.info("wecom.claims.released count=%s", count)
    return count


def retry_delay(attempts: int, base: float = RETRY_BASE) -> float:
    """Exponential backoff with jitter: base, 2·base, 4·base … capped at RETRY_CAP seconds."""
    delay = min(RETRY_CAP, base * 2 ** max(0, attempts - 1))
    return delay + random.uniform(0, delay / 4)


def _owned(model: Any, row_id: int, worker_id: str) -> Any:
    return and_(model.id == row_id, model.status == "pending", model.claimed_by == worker_id)


def _retryable(exc: BaseException) -> bool:
    from .client import WeComError

    if isinstance(exc, WeComError):
        return exc.transient
    return isinstance(exc, DBAPIError)  # a lock timeout, a concurrent upsert: try again later


def _describe(exc: BaseException) -> tuple[int | None, str]:
    from .client import WeComError

    if isinstance(exc, WeComError):
        return exc.errcode, f"errcode={exc.errcode} {exc.errmsg} ({exc.path})"[:2000]
    return None, f"{exc.__class__.__name__}: {exc}"[:2000]


def process_event(event_id: int, worker_id: str, *, retry_base: float = RETRY_BASE) -> Outcome:
    """Apply one claimed inbox row: its handler and its status change commit together, or neither.

    The final conditional UPDATE (still pending, still claimed by us) decides: if another worker
    took the row over after our lease ran out and finished it, our work is rolled back, so an
    event is applied exactly once even across `kill -9`.
    """
    row = db.session.get(InboxEvent, event_id, populate_existing=True)
    if row is None or row.status != "pending" or row.claimed_by != worker_id:
        db.session.rollback()
        return "skipped"
    handler = handler_for(row.event, row.change_type)
    now = utcnow()
    if handler is None:
        db.session.execute(update(InboxEvent).where(_owned(InboxEvent, event_id, worker_id))
                           .values(status="ignored", processed_at=now, claimed_by=None, claimed_until=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return "ignored"
    attempts, kind = row.attempts, f"{row.event}/{row.change_type}"
    try:
        handler(row)
        db.session.flush()
        result = db.session.execute(
            update(InboxEvent).where(_owned(InboxEvent, event_id, worker_id))
            .values(status="done", processed_at=utcnow(), last_error=None, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            db.session.rollback()
            log.warning("wecom.inbox.claim-lost id=%s worker=%s", event_id, worker_id)
            return "skipped"
        db.session.commit()
        return "done"
    except Exception as exc:
        db.session.rollback()
        retry = _retryable(exc) and attempts < INBOX_MAX_ATTEMPTS
        _errcode, error = _describe(exc)
        if retry:
            values: dict[str, Any] = {"next_attempt_at": utcnow() + dt.timedelta(seconds=retry_delay(attempts, retry_base))}
            log.info("wecom.inbox.retry id=%s attempts=%s error=%s", event_id, attempts, error)
        else:
            values = {"status": "failed", "processed_at": utcnow()}
            log.warning("wecom.inbox.failed id=%s event=%s attempts=%s error=%s", event_id, kind, attempts, error,
                        exc_info=not isinstance(exc, DBAPIError) and not hasattr(exc, "errcode"))
        db.session.execute(update(InboxEvent).where(_owned(InboxEvent, event_id, worker_id))
                           .values(last_error=error, claimed_by=None, claimed_until=None, **values)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return "retry" if retry else "failed"


ClientFor = Callable[[str], Any]


def process_command(command_id: int, worker_id: str, client_for: ClientFor, *,
                    retry_base: float = RETRY_BASE) -> Outcome:
    """Send one claimed outbox command to WeCom, then mark it done or failed (at least once).

    Nothing is held open while WeCom is called. A command past its `not_after` is failed
    "expired" without being sent. Transient errors (5xx, timeouts, -1, 45009, 45033) are retried
    with backoff up to OUTBOX_MAX_ATTEMPTS (and never past `not_after`); anything else fails the
    command with WeCom's errcode. The kind's after-hooks run in the transaction of that change.

    At least once: a worker killed between WeCom's answer and the commit sends the command again
    when its lease runs out. mark_tag, remark, edit/del_corp_tag are idempotent; a repeated
    send_welcome_msg is refused by WeCom (the code is single-use, 41051); a repeated app message
    (send_app_message) or mass-message task (add_msg_template) WOULD be sent twice.
    """
    cmd = db.session.get(OutboxCommand, command_id, populate_existing=True)
    if cmd is None or cmd.status != "pending" or cmd.claimed_by != worker_id:
        db.session.rollback()
        return "skipped"
    kind, method, args, client_name = cmd.kind, cmd.method, dict(cmd.args or {}), cmd.client
    not_after, attempts = cmd.not_after, cmd.attempts
    db.session.rollback()  # no transaction stays open during the call to WeCom
    if not_after is not None and utcnow() > not_after:
        return _finish(command_id, worker_id, kind, "failed", errcode=None, error="expired")
    try:
        client = client_for(client_name)
        answer = getattr(client, method)(**args)
    except Exception as exc:
        errcode, error = _describe(exc)
        if _retryable(exc) and attempts < OUTBOX_MAX_ATTEMPTS:
            next_at = utcnow() + dt.timedelta(seconds=retry_delay(attempts, retry_base))
            if not_after is None or next_at <= not_after:
                log.info("wecom.outbox.retry id=%s kind=%s attempts=%s error=%s", command_id, kind, attempts, error)
                return _finish(command_id, worker_id, kind, "retry", errcode=errcode, error=error, next_at=next_at)
        if not hasattr(exc, "errcode") and not isinstance(exc, (TypeError, ValueError)):
            log.exception("wecom.outbox.crash id=%s kind=%s", command_id, kind)
        return _finish(command_id, worker_id, kind, "failed", errcode=errcode, error=error)
    return _finish(command_id, worker_id, kind, "done", result=_jsonable(answer))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _finish(command_id: int, worker_id: str, kind: str, outcome: Outcome, *, errcode: int | None = None,
            error: str | None = None, result: Any = None, next_at: dt.datetime | None = None) -> Outcome:
    now = utcnow()
    if outcome == "retry":
        values: dict[str, Any] = {"next_attempt_at": next_at, "last_errcode": errcode, "last_error": error,
                                  "claimed_by": None, "claimed_until": None}
    elif outcome == "done":
        values = {"status": "done", "done_at": now, "result": result, "last_errcode": None, "last_error": None,
                  "claimed_by": None, "claimed_until": None}
    else:
        values = {"status": "failed", "done_at": now, "last_errcode": errcode, "last_error": error,
                  "claimed_by": None, "claimed_until": None}
    stmt = (update(OutboxCommand).where(_owned(OutboxCommand, command_id, worker_id)).values(**values)
            .execution_options(synchronize_session=False))
    hooks = outbox_hooks(kind)
    run = hooks.on_done if outcome == "done" else hooks.on_failed if outcome == "failed" else ()
    try:
        if db.session.execute(stmt).rowcount != 1:
            db.session.rollback()
            log.warning("wecom.outbox.claim-lost id=%s worker=%s", command_id, worker_id)
            return "skipped"
        if run:
            cmd = db.session.get(OutboxCommand, command_id, populate_existing=True)
            for hook in run:
                hook(cmd)
            db.session.flush()
        db.session.commit()
    except Exception:
        db.session.rollback()
        if not run:
            raise
        # A broken after-hook must not lose the outcome (nor send the command again): record it alone.
        log.exception("wecom.outbox.hook-failed id=%s kind=%s outcome=%s", command_id, kind, outcome)
        db.session.execute(stmt)
        db.session.commit()
    if outcome == "done":
        log.info("wecom.outbox.done id=%s kind=%s", command_id, kind)
    elif outcome == "failed":
        log.warning("wecom.outbox.failed id=%s kind=%s errcode=%s error=%s", command_id, kind, errcode, error)
    return outcome
