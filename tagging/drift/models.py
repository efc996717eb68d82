"""The drift reports: what differed between the local tags and WeCom's, and what healing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class DriftReport(CorpScoped, Model):
    """Differences between the local tag state and WeCom's, and what healing changed."""

    __tablename__ = "tag_drift_reports"
    __table_args__ = (Index("ix_tag_drift_reports_corp_at", "corp_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual | nightly | cli
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    healed: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
