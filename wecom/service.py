"""State changes of the WeCom layer: the callback inbox and the outbox.

`store_event` is the only write of the callback path: one short transaction, nothing slow, no
call to WeCom. The worker (crm) picks pending rows up afterwards; `core.queue` wakes it at once.

The outbox: `enqueue` adds a command in the caller's transaction (flush only); the worker is woken
after that transaction commits. The worker claims due rows with `claim_events` / `claim_commands` (a
lease; `FOR UPDATE SKIP LOCKED` on PostgreSQL, see `core.queue.claim`), then runs `process_event`
(handler + status change in ONE transaction) and `process_command` (call WeCom through the table of
`wecom.commands`, then mark done or failed and run the kind's after-hooks). A command that must not
be sent twice is marked as on its way first; when its outcome is unknown, its reconciler reads WeCom
before anything is sent again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal

from flask import current_app
from sqlalchemy import create_engine, event as sa_event, func, or_, select, update
from sqlalchemy.exc import DBAPIError

from core.db import db, register_disposable, sqlite_pragmas, utcnow
from core.queue import RETRY_BASE, backlog, claim, owned, retry_delay, wake, wake_after_commit

from .client import WeComClient, WeComError
from .commands import command as command_spec
from .dispatch import CommandView, Reconciled, batch_handler_for, handler_for, outbox_hooks, reconciler_for
from .models import InboxEvent, OutboxCommand

log = logging.getLogger("scrm.wecom")


def payload_hash(plaintext: str) -> str:
    """SHA-256 of the whole decrypted plaintext: the inbox's idempotency key (with corp_id)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def event_kind(data: dict[str, Any]) -> tuple[str, str]:
    """(Event, ChangeType) of parsed callback fields; InfoType/MsgType stand in for a missing Event."""
    event = data.get("Event") or data.get("InfoType") or data.get("MsgType") or ""
    change_type = data.get("ChangeType") or ""
    return (str(event)[:64], str(change_type)[:64])


INBOX_COLUMNS = ("corp_id", "payload_hash", "event", "change_type", "payload", "data", "received_at", "duplicates",
                 "status", "attempts", "next_attempt_at", "processed_at", "deadline")


class _Slot:
    """One callback waiting for its row: the values to insert, then (id, duplicates) or the error."""

    __slots__ = ("values", "result", "error")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.result: tuple[int, int] | None = None
        self.error: BaseException | None = None


class InboxWriter:
    """The callback path's one write: INSERT … ON CONFLICT … RETURNING, group-committed, on kept connections.

    Its own small engine, made once per process: autocommit (each INSERT is its own transaction: no
    BEGIN/COMMIT round trips), no ping on checkout (a connection the server closed is replaced and the
    insert tried once more), and on PostgreSQL server-side prepared statements.

    **Group commit.** Callbacks that arrive while this process's previous INSERT is in flight wait
    for it, then go to the database together, as one multi-row statement and one commit, each
    answered only once its row is durable. At low load a callback writes alone with no added wait;
    under a burst one round trip and one WAL flush serve many callbacks. The same payload twice in one
    batch is one row (the second counted as a duplicate), as it would be in two statements.

    The statements are text with typed bind parameters (one per batch size), so SQLAlchemy compiles
    each once; the dialects' `insert().on_conflict_do_update()` is compiled again on every call. The
    same SQL runs on SQLite (3.35+) and PostgreSQL. Under concurrent deliveries of one payload from two
    processes, PostgreSQL makes the loser wait for the winner's row and count the duplicate.
    """

    MAX_BATCH = 64

    def __init__(self, url: Any, dialect: str) -> None:
        options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_pre_ping": False,
                                   "pool_reset_on_return": None, "pool_size": 2, "max_overflow": 4}
        self.engine = create_engine(url, **options)
        if dialect == "sqlite":
            sa_event.listen(self.engine, "connect", sqlite_pragmas)
        self.dialect = dialect
        self._statements: dict[int, str] = {}
        table = InboxEvent.__table__
        self._processors = [(c, table.c[c].type.bind_processor(self.engine.dialect)) for c in INBOX_COLUMNS]
        # What a connection the server dropped raises: that connection is replaced, the batch sent once more.
        module = self.engine.dialect.loaded_dbapi
        self._disconnects: tuple[type[BaseException], ...] = (module.OperationalError, module.InterfaceError)
        self._queue: list[_Slot] = []
        self._queue_lock = threading.Lock()
        self._connection: Any = None  # the kept DBAPI connection (SQLAlchemy's pooled proxy)
        self._write_lock = threading.Lock()

    def _statement(self, rows: int) -> str:
        """The SQL for a batch of `rows` distinct payloads, in the driver's own parameter style."""
        found = self._statements.get(rows)
        if found is None:
            table = InboxEvent.__table__.name
            mark = "%({})s" if self.dialect == "postgresql" else ":{}"
            values = ", ".join("(" + ", ".join(mark.format(f"{c}_{i}") for c in INBOX_COLUMNS) + ")"
                               for i in range(rows))
            found = (f"INSERT INTO {table} ({', '.join(INBOX_COLUMNS)}) VALUES {values} "
                     f"ON CONFLICT (corp_id, payload_hash) DO UPDATE "
                     f"SET duplicates = {table}.duplicates + excluded.duplicates + 1 "
                     f"RETURNING id, corp_id, payload_hash, duplicates")
            self._statements[rows] = found
        return found

    def insert(self, values: dict[str, Any]) -> tuple[int, int]:
        """(id, duplicates) of the row once it is committed: duplicates 0 for a new event."""
        slot = _Slot(values)
        with self._queue_lock:
            self._queue.append(slot)
        with self._write_lock:  # one statement in flight per process; whoever holds it writes for all
            if slot.result is None and slot.error is None:
                with self._queue_lock:
                    batch, self._queue = self._queue[:self.MAX_BATCH], self._queue[self.MAX_BATCH:]
                self._write(batch)
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _write(self, batch: list[_Slot]) -> None:
        # One row per distinct payload: ON CONFLICT cannot touch a row twice in one statement.
        keyed: dict[tuple[str, str], list[_Slot]] = {}
        for slot in batch:
            keyed.setdefault((slot.values["corp_id"], slot.values["payload_hash"]), []).append(slot)
        params: dict[str, Any] = {}
        for i, slots in enumerate(keyed.values()):
            row = {**slots[0].values, "duplicates": len(slots) - 1}
            for column, process in self._processors:
                value = row[column]
                params[f"{column}_{i}"] = process(value) if process is not None and value is not None else value
        try:
            rows = self._execute(self._statement(len(keyed)), params)
        except BaseException as exc:
            for slot in batch:
                slot.error = exc
            return
        for row_id, corp_id, digest, duplicates in rows:
            slots = keyed[(corp_id, digest)]
            # a new row comes back with the copies of this batch after the first; a known one with more
            first = int(duplicates) - (len(slots) - 1)
            for n, slot in enumerate(slots):
                slot.result = (int(row_id), first + n)
        for slot in batch:
            if slot.result is None:
                slot.error = RuntimeError("the inbox INSERT returned no row for this callback")

    def _execute(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run on this writer's one DBAPI connection (one statement is in flight per process, so it
        needs no pool): the statement is already SQL, its values already converted by the columns' own
        bind processors, so SQLAlchemy's execution layer has nothing to add."""
        for attempt in (1, 2):
            conn = self._connection
            if conn is None:
                conn = self._connection = self.engine.raw_connection()
            try:
                cursor = conn.cursor()
                if self.dialect == "postgresql":
                    cursor.execute(sql, params, prepare=True)
                else:
                    cursor.execute(sql, params)
                rows = cursor.fetchall()
                cursor.close()
                return rows
            except self._disconnects as exc:
                self._connection = None
                conn.invalidate(exc)
                if attempt == 2:
                    raise
                log.info("wecom.callback.reconnect %s", exc.__class__.__name__)
            except BaseException:
                self._connection = None
                conn.invalidate()  # whatever state it is in, it is not reused
                raise
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()


WRITER_KEY = "scrm.wecom.inbox_writer"


def inbox_writer() -> InboxWriter:
    """This process's writer for the running app (made at first use, so each forked process has its own)."""
    found = current_app.extensions.get(WRITER_KEY)
    if found is None or found[0] != os.getpid():
        engine = db.engine
        found = (os.getpid(), InboxWriter(engine.url, engine.dialect.name))
        current_app.extensions[WRITER_KEY] = found
        register_disposable(current_app, found[1])
    writer: InboxWriter = found[1]
    return writer


@dataclass(frozen=True)
class StoredEvent:
    """What the callback path knows after its one INSERT (the row is never read back)."""

    id: int
    status: str
    created: bool
    duplicates: int


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


def store_event(corp_id: str, plaintext: str, data: dict[str, Any]) -> StoredEvent:
    """Store one decrypted callback in the inbox, durably, in one statement; what was stored.

    A repeat of a payload already stored (WeCom retries) is counted on the existing row
    (`duplicates += 1`, logged as `wecom.callback.duplicate`). An event with no registered handler is
    stored as `ignored`. A new pending event wakes the worker (in this process; on PostgreSQL a trigger
    notifies every `flask worker`).
    """
    event, change_type = event_kind(data)
    now = utcnow()
    handled = handler_for(event, change_type) is not None
    status = "pending" if handled else "ignored"
    row_id, duplicates = inbox_writer().insert({
        "corp_id": corp_id, "payload_hash": payload_hash(plaintext), "event": event, "change_type": change_type,
        "payload": plaintext, "data": data, "received_at": now, "duplicates": 0, "status": status, "attempts": 0,
        "next_attempt_at": now if handled else None, "processed_at": None if handled else now,
        "deadline": event_deadline(data, now) if handled else None,
    })
    if duplicates:
        # DEBUG, like new events: repeats are counted on the row (`duplicates`) and shown by /healthz
        log.debug("wecom.callback.duplicate id=%s event=%s change_type=%s duplicates=%s",
                 row_id, event, change_type, duplicates)
        return StoredEvent(row_id, status, False, duplicates)
    # DEBUG: the inbox row is the record of every callback; a log line each would be 86 million a day at 1,000/s
    log.debug("wecom.callback.stored id=%s event=%s change_type=%s status=%s", row_id, event, change_type, status)
    if handled:
        wake()
    return StoredEvent(row_id, status, True, 0)


def inbox_stats(corp_id: str) -> dict[str, Any]:
    """Backlog figures of the inbox for /healthz (see `_backlog`)."""
    return backlog(InboxEvent, InboxEvent.received_at, corp_id)


# ---------------------------------------------------------------- outbox: enqueue

def enqueue(corp_id: str, kind: str, method: str, args: dict[str, Any], *,
            relation_id: int | None = None, dedupe_key: str | None = None,
            not_after: dt.datetime | None = None) -> OutboxCommand:
    """Add a command for the worker to send to WeCom, in the caller's transaction (flush only).

    `method` names an entry of `wecom.commands.COMMANDS` (which app's token it uses, how it is
    called); `args` are its JSON arguments. While a command with the same `dedupe_key` is pending in
    this corp, that command is returned instead of adding another. `not_after` is a deadline: past it
    the command is failed "expired" and never sent. The worker is woken after the caller's commit.
    """
    spec = command_spec(method)
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
    command = OutboxCommand(corp_id=corp_id, kind=kind, client=spec.client, method=method, args=dict(args),
                            relation_id=relation_id, dedupe_key=dedupe_key or None, not_after=not_after,
                            status="pending", attempts=0, next_attempt_at=utcnow())
    db.session.add(command)
    db.session.flush()
    wake_after_commit()
    log.info("wecom.outbox.enqueued id=%s kind=%s method=%s relation=%s", command.id, kind, method, relation_id)
    return command


def withdraw(command_id: int, reason: str) -> bool:
    """Take back a command that is still waiting: pending, held by no worker, and never sent (no
    `sending_at`). It is failed with `withdrawn: {reason}` (flush). False when it is too late: a worker
    holds it or has sent it, and the caller must undo it in WeCom instead."""
    now = utcnow()
    result = db.session.execute(update(OutboxCommand).where(
        OutboxCommand.id == command_id, OutboxCommand.status == "pending", OutboxCommand.sending_at.is_(None),
        or_(OutboxCommand.claimed_until.is_(None), OutboxCommand.claimed_until < now))
        .values(status="failed", done_at=now, last_error=f"withdrawn: {reason}", claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False))
    if result.rowcount == 1:
        log.info("wecom.outbox.withdrawn id=%s reason=%s", command_id, reason)
        return True
    return False


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
    return backlog(OutboxCommand, OutboxCommand.created_at, corp_id)


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

Outcome = Literal["done", "retry", "failed", "ignored", "skipped"]


def claim_events(worker_id: str, limit: int = 10, lease: float = 60.0) -> list[int]:
    """Claim due pending inbox rows (see `core.queue.claim`)."""
    return claim(InboxEvent.__table__, InboxEvent.__table__.c.deadline, worker_id, limit, lease)


def claim_commands(worker_id: str, limit: int = 10, lease: float = 60.0, *, urgent_only: bool = False) -> list[int]:
    """Claim due pending outbox commands (see `core.queue.claim`); with `urgent_only`, only those with a
    deadline (`not_after`: a welcome message must go within WeCom's 20 s)."""
    return claim(OutboxCommand.__table__, OutboxCommand.__table__.c.not_after, worker_id, limit, lease,
                 urgent_only=urgent_only)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, WeComError):
        return exc.transient
    return isinstance(exc, DBAPIError)  # a lock timeout, a concurrent upsert: try again later


def _describe(exc: BaseException) -> tuple[int | None, str]:
    if isinstance(exc, WeComError):
        return exc.errcode, f"errcode={exc.errcode} {exc.errmsg} ({exc.path})"[:2000]
    return None, f"{exc.__class__.__name__}: {exc}"[:2000]


def process_events(event_ids: list[int], worker_id: str, *, retry_base: float = RETRY_BASE) -> dict[int, Outcome]:
    """Apply claimed inbox rows: those whose pair has a batch handler together (one transaction per
    handler: its writes and the rows' status change commit together, or neither), the rest one by
    one with `process_event`, and any event a batch left out or could not apply alone as well.

    The batch's final UPDATE marks done only rows still pending and still claimed by this worker; if
    any was taken over (our lease ran out), the batch is rolled back and its events applied alone,
    each under its own guard. Outcomes by id.
    """
    outcomes: dict[int, Outcome] = {}
    rows = list(db.session.scalars(select(InboxEvent).where(InboxEvent.id.in_(event_ids))
                                   .execution_options(populate_existing=True)))
    groups: dict[Any, list[InboxEvent]] = {}
    for row in rows:
        if row.status == "pending" and row.claimed_by == worker_id:
            fn = batch_handler_for(row.event, row.change_type)
            if fn is not None:
                groups.setdefault(fn, []).append(row)
    for fn, group in groups.items():
        if len(group) < 2:
            continue
        ids = [row.id for row in group]
        try:
            applied = sorted(fn(group) & set(ids))
            db.session.flush()
            if applied:
                result = db.session.execute(
                    update(InboxEvent).where(InboxEvent.id.in_(applied), InboxEvent.status == "pending",
                                             InboxEvent.claimed_by == worker_id)
                    .values(status="done", processed_at=utcnow(), last_error=None, claimed_by=None,
                            claimed_until=None).execution_options(synchronize_session=False))
                if result.rowcount != len(applied):
                    db.session.rollback()
                    log.warning("wecom.inbox.batch-claim-lost ids=%s worker=%s", applied, worker_id)
                    continue
            db.session.commit()
            outcomes.update({event_id: "done" for event_id in applied})
        except Exception as exc:  # the batch is rolled back; each of its events is applied alone below
            db.session.rollback()
            log.warning("wecom.inbox.batch-failed size=%s error=%s: %s", len(group), exc.__class__.__name__, exc)
    for event_id in event_ids:
        if event_id not in outcomes:
            outcomes[event_id] = process_event(event_id, worker_id, retry_base=retry_base)
    return outcomes


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
        db.session.execute(update(InboxEvent).where(owned(InboxEvent, event_id, worker_id))
                           .values(status="ignored", processed_at=now, claimed_by=None, claimed_until=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return "ignored"
    attempts, kind = row.attempts, f"{row.event}/{row.change_type}"
    try:
        handler(row)
        db.session.flush()
        result = db.session.execute(
            update(InboxEvent).where(owned(InboxEvent, event_id, worker_id))
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
        db.session.execute(update(InboxEvent).where(owned(InboxEvent, event_id, worker_id))
                           .values(last_error=error, claimed_by=None, claimed_until=None, **values)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return "retry" if retry else "failed"


ClientFor = Callable[[str], WeComClient]
UNKNOWN_OUTCOME = "outcome unknown: WeCom did not answer and the command must not be sent twice"
MAYBE_DELIVERED = "an earlier attempt may have taken effect (its answer was lost)"


def process_command(command_id: int, worker_id: str, client_for: ClientFor, *,
                    retry_base: float = RETRY_BASE) -> Outcome:
    """Send one claimed outbox command to WeCom, then mark it done or failed.

    Nothing is held open while WeCom is called. A command past its `not_after` is failed "expired"
    without being sent. Transient errors (5xx, timeouts, -1, 45009, 45033) are retried with backoff up
    to OUTBOX_MAX_ATTEMPTS (and never past `not_after`); anything else fails the command with WeCom's
    errcode. The kind's after-hooks run in the transaction of that change.

    A repeatable command (`wecom.commands`) is sent at least once. A command that must not be sent
    twice is first marked `sending_at` (committed); if WeCom's answer is then lost (a read timeout, a
    5xx, a crash before our commit), the next attempt asks the kind's reconciler what WeCom did before
    anything is sent again, and without a reconciler the command fails "outcome unknown".
    """
    cmd = db.session.get(OutboxCommand, command_id, populate_existing=True)
    if cmd is None or cmd.status != "pending" or cmd.claimed_by != worker_id:
        db.session.rollback()
        return "skipped"
    view = CommandView(id=cmd.id, corp_id=cmd.corp_id, kind=cmd.kind, method=cmd.method, args=dict(cmd.args or {}),
                       relation_id=cmd.relation_id, created_at=cmd.created_at, sending_at=cmd.sending_at,
                       attempts=cmd.attempts)
    not_after = cmd.not_after
    db.session.rollback()  # no transaction stays open during the call to WeCom
    if not_after is not None and utcnow() > not_after:
        error = "expired" if view.sending_at is None else f"expired; {MAYBE_DELIVERED}"
        return _finish(command_id, worker_id, view.kind, "failed", errcode=None, error=error)
    try:
        spec = command_spec(view.method)
        client = client_for(spec.client)
    except Exception as exc:  # a command no longer in the table, a missing secret: a wiring error
        log.exception("wecom.outbox.crash id=%s kind=%s", command_id, view.kind)
        return _finish(command_id, worker_id, view.kind, "failed", errcode=None, error=_describe(exc)[1])
    if view.sending_at is not None and not spec.repeatable:
        verdict = _reconcile(view, client)
        if verdict.outcome == "retry":
            return _finish(command_id, worker_id, view.kind, "retry", error=verdict.error, keep_sending=True,
                           next_at=utcnow() + dt.timedelta(seconds=retry_delay(view.attempts, retry_base)))
        if verdict.outcome != "resend":
            return _finish(command_id, worker_id, view.kind, verdict.outcome, error=verdict.error,
                           result=_jsonable(verdict.result))
        log.info("wecom.outbox.resend id=%s kind=%s (WeCom has not acted on it)", command_id, view.kind)
    if not spec.repeatable and not _mark_sending(command_id, worker_id):
        return "skipped"
    try:
        answer = spec.call(client, view.args)
    except Exception as exc:
        errcode, error = _describe(exc)
        if spec.repeatable and errcode in spec.done_if_resent and view.sending_at is not None:
            log.info("wecom.outbox.done-earlier id=%s kind=%s errcode=%s", command_id, view.kind, errcode)
            return _finish(command_id, worker_id, view.kind, "done",
                           result={"done_by_an_earlier_attempt": True, "errcode": errcode})
        lost = bool(getattr(exc, "maybe_sent", False))  # the answer, not necessarily the action, was lost
        maybe_sent = lost and not spec.repeatable
        if (_retryable(exc) or maybe_sent) and view.attempts < OUTBOX_MAX_ATTEMPTS:
            next_at = utcnow() + dt.timedelta(seconds=retry_delay(view.attempts, retry_base))
            if not_after is None or next_at <= not_after:
                log.info("wecom.outbox.retry id=%s kind=%s attempts=%s maybe_sent=%s error=%s", command_id,
                         view.kind, view.attempts, maybe_sent, error)
                return _finish(command_id, worker_id, view.kind, "retry", errcode=errcode, error=error,
                               next_at=next_at, keep_sending=maybe_sent if not spec.repeatable
                               else lost or view.sending_at is not None)
        if maybe_sent:
            error = f"{UNKNOWN_OUTCOME} ({error})"
        elif view.sending_at is not None or lost:
            error = f"{error}; {MAYBE_DELIVERED}"
        if not isinstance(exc, (WeComError, TypeError, ValueError, KeyError)):
            log.exception("wecom.outbox.crash id=%s kind=%s", command_id, view.kind)
        return _finish(command_id, worker_id, view.kind, "failed", errcode=errcode, error=error)
    return _finish(command_id, worker_id, view.kind, "done", result=_jsonable(answer))


def _mark_sending(command_id: int, worker_id: str) -> bool:
    """Record (and commit) that a command which must not be sent twice is on its way to WeCom."""
    result = db.session.execute(update(OutboxCommand).where(owned(OutboxCommand, command_id, worker_id))
                                .values(sending_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def _reconcile(view: CommandView, client: WeComClient) -> Reconciled:
    """Ask the kind's reconciler what WeCom did with a command whose answer was lost."""
    reconciler = reconciler_for(view.kind)
    if reconciler is None:
        return Reconciled("failed", error=UNKNOWN_OUTCOME)
    try:
        verdict = reconciler(view, client)
    except WeComError as exc:
        if exc.transient:
            return Reconciled("retry", error=f"reconcile: {_describe(exc)[1]}")
        return Reconciled("failed", error=f"{UNKNOWN_OUTCOME}; reconcile failed: {_describe(exc)[1]}")
    log.info("wecom.outbox.reconciled id=%s kind=%s outcome=%s", view.id, view.kind, verdict.outcome)
    return verdict


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _finish(command_id: int, worker_id: str, kind: str, outcome: Outcome, *, errcode: int | None = None,
            error: str | None = None, result: Any = None, next_at: dt.datetime | None = None,
            keep_sending: bool = False) -> Outcome:
    """Record an attempt's outcome. On a retry, `keep_sending` keeps (or sets) `sending_at`: an attempt
    may have taken effect though its answer was lost."""
    now = utcnow()
    if outcome == "retry":
        values: dict[str, Any] = {"next_attempt_at": next_at, "last_errcode": errcode, "last_error": error,
                                  "claimed_by": None, "claimed_until": None}
        values["sending_at"] = func.coalesce(OutboxCommand.sending_at, now) if keep_sending else None
    elif outcome == "done":
        values = {"status": "done", "done_at": now, "result": result, "last_errcode": None, "last_error": None,
                  "claimed_by": None, "claimed_until": None, "sending_at": None}
    else:
        values = {"status": "failed", "done_at": now, "last_errcode": errcode, "last_error": error,
                  "claimed_by": None, "claimed_until": None, "sending_at": None}
    stmt = (update(OutboxCommand).where(owned(OutboxCommand, command_id, worker_id)).values(**values)
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
