"""Tables of tagging part 2: auto-tagging rules and their runs, bulk tag jobs, drift reports.

Kept apart from `tagging/models.py` (segments, events, tiers) so the two parts evolve independently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from extensions import CorpScoped, db, utcnow


class TagRule(CorpScoped, db.Model):
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


class TagRuleRun(CorpScoped, db.Model):
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


class TagJob(CorpScoped, db.Model):
    """A long tag change run in the background: a bulk edit, a merge, a rule backfill.

    `cursor` (the last customer id done) lets a job that died resume; `done`/`total` is the progress.
    """

    __tablename__ = "tag_jobs"
    __table_args__ = (Index("ix_tag_jobs_corp_status", "corp_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # bulk_edit | backfill
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(96), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[Optional[dt.datetime]]
    finished_at: Mapped[Optional[dt.datetime]]


class DriftReport(CorpScoped, db.Model):
    """Differences between the local tag state and WeCom's, and what healing changed."""

    __tablename__ = "tag_drift_reports"
    __table_args__ = (Index("ix_tag_drift_reports_corp_at", "corp_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual | nightly | cli
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    healed: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
