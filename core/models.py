"""Tables of the shared plumbing: scheduled jobs' locks and the durable queue of local tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class JobLock(CorpScoped, Model):
    """A scheduled job's lock, shared by every process that runs a scheduler.

    `locked_until` is a lease (a crashed process's lock runs out); `last_run_at` is when the job
    last started, so a nightly job fired by two processes runs once that night.
    """

    __tablename__ = "job_locks"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    locked_by: Mapped[Optional[str]] = mapped_column(String(128))
    locked_until: Mapped[Optional[dt.datetime]]
    last_run_at: Mapped[Optional[dt.datetime]]


class Task(CorpScoped, Model):
    """Local work that must happen once, after the transaction that asked for it, in the worker.

    A service (or a signal subscriber) adds a task in its own transaction (`core.tasks.enqueue_task`);
    the worker claims it like an inbox event (a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL) and runs
    the handler registered for its `kind` and the status change in ONE transaction, so a task is
    applied exactly once even across `kill -9`. Auto-tagging rules run this way, not in the request
    that changed the tag.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_next_attempt", "status", "next_attempt_at"),
        Index("uq_tasks_pending_dedupe", "corp_id", "dedupe_key", unique=True,
              postgresql_where=text("status = 'pending' AND dedupe_key IS NOT NULL"),
              sqlite_where=text("status = 'pending' AND dedupe_key IS NOT NULL")),
    )

    STATUSES = ("pending", "done", "failed")

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[Optional[str]] = mapped_column(String(191))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[dt.datetime]]
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[Optional[dt.datetime]]
    claimed_by: Mapped[Optional[str]] = mapped_column(String(128))
    claimed_until: Mapped[Optional[dt.datetime]]
    # Tasks have no deadline; the column keeps one claim query for every queue table.
    deadline: Mapped[Optional[dt.datetime]]

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.kind} {self.status}>"
