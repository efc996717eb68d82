"""Tables of the channels package.

- `Channel`: a channel code (渠道活码): a WeCom contact way (「联系我」, kind `contact`) with its staff,
  `state`, welcome message, arrival tags, cost and status, or a group-chat join way (「加入群聊」, kind
  `join`) with its ≤5 chats, `state`, arrival tags, cost and status; `config_id` and `qr_code` once WeCom
  created it;
- `ChannelAlert`: one row per alert condition that fired (so each fires once);
- `TrackedLink` / `LinkOpen`: the interaction radar: a link shared by staff, and each time a customer
  opened it through their signed per-recipient URL.

Names shown elsewhere (sidebar, segments, console) come from `crm.models.ChannelLabel`, which the service
writes whenever a channel is created or renamed: nothing below `channels` imports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Float, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow

# Channel kind
CONTACT, JOIN = "contact", "join"
# Channel status. `pending`: the add_contact_way command waits in the outbox; `active`: the code works and
# its welcome message and tags apply; `paused`: the code still works in WeCom (a printed poster keeps
# adding customers, who are still attributed) but its welcome message and arrival tags are off; `retired`:
# the way is deleted in WeCom (del_contact_way); `failed`: WeCom refused to create it (see `error`).
PENDING, ACTIVE, PAUSED, RETIRED, FAILED = "pending", "active", "paused", "retired", "failed"
STATUSES = (PENDING, ACTIVE, PAUSED, RETIRED, FAILED)


class Channel(CorpScoped, Model):
    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("corp_id", "state"),
        Index("ix_channels_corp_status", "corp_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8), default=CONTACT)  # contact | join
    state: Mapped[str] = mapped_column(String(30))  # WeCom's State, ≤30 characters, generated
    users: Mapped[list[str]] = mapped_column(JSON, default=list)  # staff the code routes to
    multi: Mapped[bool] = mapped_column(Boolean, default=False)  # WeCom type 2 (several members)
    skip_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    # Optional routing by time: [{"days": [1..7], "start": "09:00", "end": "18:00", "users": [...]}]
    schedule: Mapped[Optional[list[dict[str, Any]]]] = mapped_column(JSON)
    routed_users: Mapped[list[str]] = mapped_column(JSON, default=list)  # whom WeCom routes to now
    chat_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # join ways: ≤5 group chats
    # join ways: when every chat is full, WeCom opens a new one named room_base_name + number from room_base_id
    auto_create_room: Mapped[bool] = mapped_column(Boolean, default=False)
    room_base_name: Mapped[Optional[str]] = mapped_column(String(40))
    room_base_id: Mapped[Optional[int]] = mapped_column(Integer)
    welcome_text: Mapped[str] = mapped_column(Text, default="")
    welcome_attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    tag_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # added on arrival (through a rule)
    rule_id: Mapped[Optional[int]] = mapped_column(Integer)  # the tagging rule that adds `tag_ids`
    cost: Mapped[Optional[Any]] = mapped_column(Numeric(14, 2))  # what the channel cost (yuan)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    config_id: Mapped[Optional[str]] = mapped_column(String(64))
    qr_code: Mapped[Optional[str]] = mapped_column(String(512))
    owner_userid: Mapped[Optional[str]] = mapped_column(String(64))  # gets the alerts
    command_id: Mapped[Optional[int]] = mapped_column(Integer)  # the latest outbox command about the way
    sync_state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(96), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    retired_at: Mapped[Optional[dt.datetime]]

    def __repr__(self) -> str:
        return f"<Channel {self.id} {self.name!r} {self.state} {self.status}>"


class ChannelAlert(CorpScoped, Model):
    """An alert condition that fired: (channel, kind, key) is unique, so a condition fires once. `key`
    names the occurrence (the day the channel went quiet, the staff member, the week of the loss rate)."""

    __tablename__ = "channel_alerts"
    __table_args__ = (UniqueConstraint("corp_id", "channel_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # no_new | near_limit | resigned | loss_rate
    key: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    notified: Mapped[list[str]] = mapped_column(JSON, default=list)
    command_id: Mapped[Optional[int]] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrackedLink(CorpScoped, Model):
    """A link staff share with customers (an article, a product page, a file) whose opens are recorded."""

    __tablename__ = "channel_links"
    __table_args__ = (Index("ix_channel_links_corp_created", "corp_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2000))
    created_by: Mapped[str] = mapped_column(String(96), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LinkOpen(CorpScoped, Model):
    """A customer opened a tracked link through a valid signed URL; `notified` when this open sent the
    staff member an app message (at most one per customer and link per hour)."""

    __tablename__ = "channel_link_opens"
    __table_args__ = (Index("ix_channel_link_opens_link_customer_at", "link_id", "external_userid", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(Integer)
    external_userid: Mapped[str] = mapped_column(String(64))
    userid: Mapped[str] = mapped_column(String(64), default="")
    event_id: Mapped[str] = mapped_column(String(128))
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChannelStat(CorpScoped, Model):
    """The attribution pre-aggregate (`channels.reports`): follow relations by the China day they were
    added, State and the customer's stage: how many, how many per value tier (`tier_1`…`tier_4`, in the
    order of `tagging.lifecycle.tiers.TIERS`), how many lost (ever, within 7 and 30 days; a handover is
    not a loss) and their days to loss. Rebuilt set-based by the job every few minutes
    (and by a report that finds it stale), so a report sums a few thousand rows whatever the corp's size."""

    __tablename__ = "channel_stats"
    __table_args__ = (Index("ix_channel_stats_corp_day", "corp_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date]
    state: Mapped[str] = mapped_column(String(64), default="")
    stage: Mapped[str] = mapped_column(String(32), default="")
    added: Mapped[int] = mapped_column(Integer, default=0)
    tier_1: Mapped[int] = mapped_column(Integer, default=0)
    tier_2: Mapped[int] = mapped_column(Integer, default=0)
    tier_3: Mapped[int] = mapped_column(Integer, default=0)
    tier_4: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)
    lost_7: Mapped[int] = mapped_column(Integer, default=0)  # lost less than 7 days after being added
    lost_30: Mapped[int] = mapped_column(Integer, default=0)
    lost_days: Mapped[float] = mapped_column(Float, default=0.0)  # sum of days to loss of the lost


class ChannelStatsRun(CorpScoped, Model):
    """When the corp's `channel_stats` were last rebuilt."""

    __tablename__ = "channel_stats_runs"
    __table_args__ = (UniqueConstraint("corp_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    refreshed_at: Mapped[dt.datetime]
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
