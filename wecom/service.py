"""State changes of the WeCom layer: the callback inbox.

`store_event` is the only write of the callback path: one short transaction, nothing slow, no
call to WeCom. The worker (crm) picks pending rows up afterwards; it may register a wake hook
with `set_wake_hook` so it starts at once instead of at its next poll.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db, utcnow

from .dispatch import handler_for
from .models import InboxEvent

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


def inbox_stats(corp_id: str) -> dict[str, Any]:
    """Backlog figures for /healthz: pending and failed counts, age of the oldest pending event.

    `oldest_pending_age_s` is 0.0 when nothing is pending.
    """
    rows = db.session.execute(
        select(InboxEvent.status, func.count(), func.min(InboxEvent.received_at))
        .where(InboxEvent.corp_id == corp_id, InboxEvent.status.in_(("pending", "failed")))
        .group_by(InboxEvent.status)
    ).all()
    stats: dict[str, Any] = {"pending": 0, "failed": 0, "oldest_pending_age_s": 0.0}
    for status, count, oldest in rows:
        stats[status] = int(count)
        if status == "pending" and oldest is not None:
            stats["oldest_pending_age_s"] = round(max(0.0, (utcnow() - oldest).total_seconds()), 3)
    return stats
