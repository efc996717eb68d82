"""The table of event handlers: (Event, ChangeType) → handler, one table per app.

`wecom` never imports the features that apply events: `create_app` registers crm's handlers
here (`register(app, "change_external_contact", "add_external_contact", fn)`), and the worker
looks them up with `handler_for(event, change_type)`. A stored event whose pair has no handler
is marked `ignored` at ingest (and still answered `success`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple

from flask import Flask, current_app

if TYPE_CHECKING:
    from .client import WeComClient
    from .models import InboxEvent, OutboxCommand

# The worker calls a handler with the stored event, inside the transaction that marks the event
# done: the handler flushes, never commits. Raising rolls the whole application of the event back
# (a transient `WeComError` or a database error is retried later, anything else fails the event).
Handler = Callable[["InboxEvent"], None]

# Optional, beside a handler: applies many claimed events of its pairs at once, in the transaction
# that marks them done (flush, never commit), and returns the ids of those it applied. An event it
# leaves out (its customer could not be read now, an unusual case) is applied alone by the handler.
# Raising rolls the whole batch back; every event is then applied alone.
BatchHandler = Callable[[list["InboxEvent"]], set[int]]

# Called with a command just marked done or failed, in the same transaction (flush, never commit),
# so a feature can correct its local state when WeCom refuses a write (e.g. 84061, 40068).
OutboxHook = Callable[["OutboxCommand"], None]

EXTENSION_KEY = "scrm.wecom.handlers"
BATCH_KEY = "scrm.wecom.batch_handlers"
OUTBOX_HOOKS_KEY = "scrm.wecom.outbox_hooks"
RECONCILERS_KEY = "scrm.wecom.reconcilers"


@dataclass(frozen=True)
class CommandView:
    """What a reconciler is told about a command whose answer was lost (a detached copy of the row)."""

    id: int
    corp_id: str
    kind: str
    method: str
    args: dict[str, Any]
    relation_id: int | None
    created_at: dt.datetime
    sending_at: dt.datetime | None
    attempts: int


@dataclass(frozen=True)
class Reconciled:
    """A reconciler's verdict: WeCom did it ("done", with the answer WeCom would have given), did not
    ("resend"), cannot say now ("retry"), or the command cannot succeed ("failed", with why)."""

    outcome: Literal["done", "resend", "retry", "failed"]
    result: Any = None
    error: str | None = None


# Called by the worker, outside any transaction, with the app's client for the command: it reads
# WeCom (never writes) to find out whether a command whose answer was lost took effect.
Reconciler = Callable[[CommandView, "WeComClient"], Reconciled]


class OutboxHooks(NamedTuple):
    on_done: tuple[OutboxHook, ...] = ()
    on_failed: tuple[OutboxHook, ...] = ()

# Every customer-contact callback of wecom-api.md §3 (self-built app form), and the address-book event
# that says a member left.
KNOWN_EVENTS: frozenset[tuple[str, str]] = frozenset(
    [("change_external_contact", ct) for ct in (
        "add_external_contact", "edit_external_contact", "add_half_external_contact",
        "del_external_contact", "del_follow_user", "transfer_fail", "msg_audit_approved")]
    + [("change_external_chat", ct) for ct in ("create", "update", "dismiss")]
    + [("change_external_tag", ct) for ct in ("create", "update", "delete", "shuffle")]
    + [("change_contact", "delete_user")]  # the address book: a member left the corp
)


def _table(app: Flask) -> dict[tuple[str, str], Handler]:
    return app.extensions.setdefault(EXTENSION_KEY, {})


def register(app: Flask, event: str, change_type: str, fn: Handler) -> None:
    """Make `fn` the handler of (event, change_type) in `app`.

    Registering a different function for a pair that already has one is a wiring mistake and
    raises `ValueError`; registering the same function again is harmless.
    """
    table = _table(app)
    key = (event, change_type)
    if key in table and table[key] is not fn:
        raise ValueError(f"a handler for {event}/{change_type} is already registered: {table[key]!r}")
    table[key] = fn


def handler_for(event: str, change_type: str, app: Flask | None = None) -> Handler | None:
    """The handler of (event, change_type) in `app` (default: the current app), or None."""
    return _table(app or current_app).get((event, change_type))


def register_batch(app: Flask, event: str, change_type: str, fn: BatchHandler) -> None:
    """Let `fn` apply events of (event, change_type) in batches; the pair must have a handler too."""
    if (event, change_type) not in _table(app):
        raise ValueError(f"register a handler for {event}/{change_type} before its batch handler")
    app.extensions.setdefault(BATCH_KEY, {})[(event, change_type)] = fn


def batch_handler_for(event: str, change_type: str, app: Flask | None = None) -> BatchHandler | None:
    """The batch handler of (event, change_type), or None (each event is then applied alone)."""
    return (app or current_app).extensions.get(BATCH_KEY, {}).get((event, change_type))


def handlers(app: Flask | None = None) -> dict[tuple[str, str], Handler]:
    """A copy of the whole table (for health pages and tests)."""
    return dict(_table(app or current_app))


def is_known(event: str, change_type: str) -> bool:
    """True for the customer-contact events of wecom-api.md §3 (handled or not)."""
    return (event, change_type) in KNOWN_EVENTS


def register_outbox_hooks(app: Flask, kind: str, *, on_done: OutboxHook | None = None,
                          on_failed: OutboxHook | None = None) -> None:
    """Add after-hooks for outbox commands of `kind` (several features may add theirs)."""
    table: dict[str, OutboxHooks] = app.extensions.setdefault(OUTBOX_HOOKS_KEY, {})
    hooks = table.get(kind, OutboxHooks())
    done = hooks.on_done + ((on_done,) if on_done is not None and on_done not in hooks.on_done else ())
    failed = hooks.on_failed + ((on_failed,) if on_failed is not None and on_failed not in hooks.on_failed else ())
    table[kind] = OutboxHooks(done, failed)


def outbox_hooks(kind: str, app: Flask | None = None) -> OutboxHooks:
    """The after-hooks registered for outbox commands of `kind` (empty when none)."""
    return (app or current_app).extensions.get(OUTBOX_HOOKS_KEY, {}).get(kind, OutboxHooks())


def register_reconciler(app: Flask, kind: str, fn: Reconciler) -> None:
    """Make `fn` the reconciler of outbox commands of `kind` (one per kind)."""
    table: dict[str, Reconciler] = app.extensions.setdefault(RECONCILERS_KEY, {})
    if kind in table and table[kind] is not fn:
        raise ValueError(f"a reconciler for {kind!r} is already registered: {table[kind]!r}")
    table[kind] = fn


def reconciler_for(kind: str, app: Flask | None = None) -> Reconciler | None:
    return (app or current_app).extensions.get(RECONCILERS_KEY, {}).get(kind)
