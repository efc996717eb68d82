"""Saved segments: a name and a filter tree, evaluated when used."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class Segment(CorpScoped, Model):
    """A saved segment: a name and a filter tree F (DESIGN.md), evaluated when used."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(300), default="")
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[Optional[dt.datetime]]
