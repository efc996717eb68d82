"""Tables of the customer lifecycle: per-corp settings (stage mirror, tier thresholds), behaviour events
and value tiers. (Stages and their history are `crm`'s: `Stage`, `StageChange`.)"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class TaggingSetting(CorpScoped, Model):
    """A per-corp setting of this package (stage mirror on/off, tier thresholds), edited by admins."""

    __tablename__ = "tagging_settings"
    __table_args__ = (UniqueConstraint("corp_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(96), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BehaviorEvent(CorpScoped, Model):
    """Something another touch point recorded about a customer: a page view, a click, a form, an order.

    `event_id` is the sender's id, unique per corp (a repeated batch stores nothing twice). `path`
    and `amount` are lifted out of `properties` so segments and tiers can filter on them in SQL.
    """

    __tablename__ = "behavior_events"
    __table_args__ = (
        UniqueConstraint("corp_id", "event_id"),
        # a customer's timeline and "this customer's page views in the last N days"
        Index("ix_behavior_events_customer_type_at", "customer_id", "type", "at"),
        # segments and tiers: every customer with events of a type in a window (PostgreSQL reads the
        # customer, path and amount from the index alone)
        Index("ix_behavior_events_corp_type_at", "corp_id", "type", "at",
              postgresql_include=["customer_id", "path", "amount"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime]
    path: Mapped[Optional[str]] = mapped_column(String(512))
    amount: Mapped[Optional[Decimal]] = mapped_column(Numeric(14, 2))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(96), default="")  # token:NAME that sent it
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ValueTier(CorpScoped, Model):
    """The value tier (高价值 / 潜力 / 待唤醒 / 流失风险) a customer was last placed in, with its RFM figures."""

    __tablename__ = "value_tiers"
    __table_args__ = (
        UniqueConstraint("corp_id", "customer_id"),
        Index("ix_value_tiers_corp_tier", "corp_id", "tier"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(16))
    recency_days: Mapped[Optional[int]] = mapped_column(Integer)  # days since the last order
    frequency: Mapped[int] = mapped_column(Integer, default=0)  # orders in the window
    monetary: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)  # order amount in the window
    active_days: Mapped[Optional[int]] = mapped_column(Integer)  # days since the last event of any type
    since: Mapped[dt.datetime] = mapped_column(default=utcnow)  # placed in this tier at
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
