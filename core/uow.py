"""The unit of work: one commit per request, job or command; side effects after it.

Services change the session and flush. The request boundary decides once:

- a response below 400 commits (a redirect after a form, a JSON 201 …), anything else rolls back;
- a page whose error handler turns a `ScrmError` into a redirect marks the request failed
  (`mark_failed`), so the partial change is rolled back even though the answer is a 303;
- work that must wait for the commit (start a background job, wake a thread) is registered with
  `after_commit(fn)` and runs only once the commit succeeded.

CLI commands and threads use `unit_of_work()`; scheduled jobs get the same from `core.jobs.run_job`,
queued work from the worker.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from flask import Flask, Response, g, has_request_context

from core.db import db

log = logging.getLogger("scrm.core.uow")

_FAILED = "_scrm_uow_failed"
_AFTER = "_scrm_uow_after_commit"


def mark_failed() -> None:
    """Roll this request's changes back whatever status it answers with."""
    setattr(g, _FAILED, True)


def after_commit(fn: Callable[[], Any]) -> None:
    """Run `fn()` once this request's (or unit of work's) commit has succeeded; at once outside both."""
    if has_request_context():
        g.setdefault(_AFTER, []).append(fn)
        return
    pending = _pending.get()
    if pending is None:
        fn()
    else:
        pending.append(fn)


_pending: contextvars.ContextVar[list[Callable[[], Any]] | None] = contextvars.ContextVar("scrm_uow", default=None)


def _run(callbacks: list[Callable[[], Any]]) -> None:
    for fn in callbacks:
        try:
            fn()
        except Exception:  # the change is committed; a failed side effect is retried by its own job
            log.exception("core.uow.after-commit-failed fn=%r", fn)


def _session_touched() -> bool:
    """Whether this request used the session (a request that never did costs no COMMIT)."""
    registry = db.session.registry
    if not registry.has():
        return False
    session = registry()
    return session.in_transaction() or bool(session.new or session.deleted or session.dirty)


def _finish(response: Response) -> Response:
    failed = g.pop(_FAILED, False)
    callbacks = g.pop(_AFTER, [])
    touched = _session_touched()
    if failed or response.status_code >= 400:
        if touched:
            db.session.rollback()
        return response
    if touched:
        db.session.commit()
    _run(callbacks)
    return response


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit once when the block ends, or roll back when it raises (CLI commands, threads)."""
    callbacks: list[Callable[[], Any]] = []
    token = _pending.set(callbacks)
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        _pending.reset(token)
    _run(callbacks)


def init_app(app: Flask) -> None:
    app.after_request(_finish)
