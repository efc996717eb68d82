"""Tables of auto-tagging rules: the rules and each time one fired (or was stopped as a loop)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class TagRule(CorpScoped, Model):
    """A declarative auto-tagging rule: WHEN `trigger` (with `trigger_params`) IF `condition` (a filter F)
    THEN `actions` ([{"add_tags": [...]}, {"remove_tags": [...]}, {"set_stage": s}, {"notify": text}])."""

    __tablename__ = "tag_rules"
    __table_args__ = (
        UniqueConstraint("corp_id", "name"),
        Index("ix_tag_rules_corp_trigger", "corp_id", "trigger"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger: Mapped[str] = mapped_column(String(32))
    trigger_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    condition: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(96), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[Optional[dt.datetime]]


class TagRuleRun(CorpScoped, Model):
    """One firing of a rule on one customer: what it changed, or why it stopped (a loop)."""

    __tablename__ = "tag_rule_runs"
    __table_args__ = (
        Index("ix_tag_rule_runs_rule_at", "rule_id", "at"),
        Index("ix_tag_rule_runs_corp_outcome", "corp_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(32))
    chain: Mapped[list[int]] = mapped_column(JSON, default=list)  # rule ids applied before in this cascade
    outcome: Mapped[str] = mapped_column(String(16))  # applied | unchanged | loop | too_deep
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
