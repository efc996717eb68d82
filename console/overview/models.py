"""Pre-aggregates of the overview (概览), rebuilt from the customer tables by the worker (`refresh.py`).

- `OverviewDaily`: per China calendar day, staff member and channel (State): relations added, relations
  lost, follow-ups written. Event counts: a period's figures are sums of days.
- `OverviewMonthly`: the same summed by month and staff member, for the staff table of long periods.
- `OverviewCurrent`: the customers as they are now, per (staff member, channel, stage): `customers`
  counts each customer once, under its first active relation (the earliest added, "归属"); `relations`
  counts every active relation (a staff member's own customers).
- `OverviewTagCount`: per (staff member, channel, tag): customers carrying the tag on an active
  relation, each counted once under its first active relation (as in `OverviewCurrent`).
- `OverviewState`: per corp, what has been refreshed and up to which relation id (the watermark).

Nothing else writes these tables; `refresh.py` documents how they stay right for every write path.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Boolean, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model


class OverviewDaily(CorpScoped, Model):
    __tablename__ = "overview_daily"
    __table_args__ = (UniqueConstraint("corp_id", "day", "userid", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)  # a China calendar day
    userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64), default="")
    added: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    followups: Mapped[int] = mapped_column(Integer, default=0)


class OverviewMonthly(CorpScoped, Model):
    """`OverviewDaily` summed by calendar month and staff member (every channel): what the staff table
    reads for the whole months of a long period (a year is 12 rows per member, not 365 × channels)."""

    __tablename__ = "overview_monthly"
    __table_args__ = (UniqueConstraint("corp_id", "month", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date)  # the first day of the month
    userid: Mapped[str] = mapped_column(String(64))
    added: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    followups: Mapped[int] = mapped_column(Integer, default=0)


class OverviewCurrent(CorpScoped, Model):
    __tablename__ = "overview_current"
    __table_args__ = (UniqueConstraint("corp_id", "userid", "state", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64), default="")
    stage: Mapped[str] = mapped_column(String(32), default="")  # '' = no stage set
    customers: Mapped[int] = mapped_column(Integer, default=0)
    relations: Mapped[int] = mapped_column(Integer, default=0)


class OverviewTagCount(CorpScoped, Model):
    __tablename__ = "overview_tag_counts"
    __table_args__ = (UniqueConstraint("corp_id", "userid", "state", "tag_pk"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64), default="")
    tag_pk: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer, default=0)


class OverviewState(CorpScoped, Model):
    __tablename__ = "overview_state"
    __table_args__ = (UniqueConstraint("corp_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    relation_watermark: Mapped[int] = mapped_column(Integer, default=0)  # highest follow_relations.id seen
    days_refreshed_at: Mapped[Optional[dt.datetime]]
    current_refreshed_at: Mapped[Optional[dt.datetime]]
    full_rebuilt_at: Mapped[Optional[dt.datetime]]
    rebuild_requested: Mapped[bool] = mapped_column(Boolean, default=False)
