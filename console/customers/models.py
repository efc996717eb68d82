"""CSV exports of the customer list: a job with progress, its file kept in the database in parts.

The file lives in `customer_export_parts` (one row per chunk of customers, in order), not on a disk, so
any process (a web process, `flask worker` on another machine) can write or serve it, and a job that
died resumes after its last committed part. Exports expire after `EXPORT_TTL` (`jobs.py` deletes them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class CustomerExport(CorpScoped, Model):
    """One export of the customer list as the requester saw it (filters, sort, their scope)."""

    __tablename__ = "customer_exports"
    __table_args__ = (Index("ix_customer_exports_corp_status", "corp_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the list's filters and sort
    # whose scope the export has: the requester's role and userid at the time of the request
    role: Mapped[str] = mapped_column(String(16))
    userid: Mapped[Optional[str]] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[str] = mapped_column(String(256), default="")  # the list's cursor after the last part
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(96), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[Optional[dt.datetime]]
    finished_at: Mapped[Optional[dt.datetime]]


class CustomerExportPart(CorpScoped, Model):
    """A chunk of an export's CSV text, in order (`seq` from 1; part 1 starts with the header)."""

    __tablename__ = "customer_export_parts"
    __table_args__ = (UniqueConstraint("export_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("customer_exports.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
