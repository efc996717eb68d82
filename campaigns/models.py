"""Tables of the campaigns package: mass messages (群发) to customers or customer group chats.

- `Campaign`: what the marketer composed (audience, content, send time) and where it stands;
- `CampaignTask`: one `add_msg_template` call: one sender, at most 10,000 customers (2,000 chats);
- `CampaignRecipient`: one customer (or chat) of a campaign: excluded (and why), planned, then what
  WeCom reported (delivered, not a friend, quota reached, unsent); the one table that grows with the
  audience, so it is narrow and written set-based;
- `CampaignUpload`: an image or file the marketer uploaded, kept here (the bytes) because WeCom's
  temporary media live 3 days and a campaign may be sent later;
- `CampaignReminder`: a "remind the senders" press (WeCom allows 3 per message in 24 h);
- `CampaignSettings`: the corp's receive quota and follow window;
- `ForeignMessage` / `ForeignReceipt`: mass messages this product did not send (a member's own, another
  tool's), read from WeCom, so the receive quota counts them too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow

# Campaign status
SCHEDULED, PLANNING, SENDING, FOLLOWING, DONE, CANCELLED, FAILED = (
    "scheduled", "planning", "sending", "following", "done", "cancelled", "failed")
OPEN_STATUSES = (SCHEDULED, PLANNING, SENDING, FOLLOWING)

# Task status: pending (its command waits in the outbox), created (WeCom made the message; the sender has
# not confirmed it yet), sent (the sender confirmed), and the ends: failed, cancelled, expired (never
# confirmed within the follow window). `complete` says every recipient of a sent task has its final result.
T_PENDING, T_CREATED, T_SENT, T_FAILED, T_CANCELLING, T_CANCELLED, T_EXPIRED = (
    "pending", "created", "sent", "failed", "cancelling", "cancelled", "expired")

# Recipient status
R_EXCLUDED, R_PLANNED, R_DELIVERED, R_NOT_FRIEND, R_QUOTA, R_UNSENT, R_FAILED, R_CANCELLED = (
    "excluded", "planned", "delivered", "not_friend", "quota", "unsent", "failed", "cancelled")
# Why a recipient was excluded at planning time
X_LOST, X_QUOTA, X_NO_SENDER = "lost", "quota", "no_sender"

# WeCom's send_result status → ours (wecom-api.md §7.4)
WECOM_RESULT = {1: R_DELIVERED, 2: R_NOT_FRIEND, 3: R_QUOTA}


class CampaignSettings(CorpScoped, Model):
    """The corp's mass-message rules: how many corp mass messages a customer may receive per period
    (WeCom's 2023 spec: 1 per China day; older documents: 4 per natural month) and how long a campaign
    is followed after it was sent."""

    __tablename__ = "campaign_settings"
    __table_args__ = (UniqueConstraint("corp_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quota_count: Mapped[int] = mapped_column(Integer, default=1)
    quota_period: Mapped[str] = mapped_column(String(8), default="day")  # day | month
    follow_days: Mapped[int] = mapped_column(Integer, default=3)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(96), default="")


class CampaignUpload(CorpScoped, Model):
    """An image, video or file for an attachment: the bytes are ours; `media_id` is WeCom's temporary
    copy (valid 3 days), uploaded again at send time when it is missing or too old."""

    __tablename__ = "campaign_uploads"
    __table_args__ = (Index("ix_campaign_uploads_corp_sha256", "corp_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | video | file
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    media_id: Mapped[Optional[str]] = mapped_column(String(128))
    media_uploaded_at: Mapped[Optional[dt.datetime]]
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Campaign(CorpScoped, Model):
    """A mass message as composed, and where it stands. The audience (a saved segment, a filter F, or the
    chats of chosen owners) is resolved at send time, not when composed."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_corp_status_send_at", "corp_id", "status", "send_at"),
        Index("ix_campaigns_corp_created", "corp_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    chat_type: Mapped[str] = mapped_column(String(8), default="single")  # single (customers) | group (chats)
    segment_id: Mapped[Optional[int]] = mapped_column(ForeignKey("segments.id"))
    filter: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)  # F when built on the spot
    owners: Mapped[list[str]] = mapped_column(JSON, default=list)  # group campaigns: the chats of these owners
    text: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Who sends each customer: followup (who wrote the latest follow-up, else the earliest relation),
    # earliest, latest, or preferred (`preferred_userids` first, in order, then the followup rule).
    sender_rule: Mapped[str] = mapped_column(String(16), default="followup")
    preferred_userids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The composer's scope when limited (a manager: their team's customers and senders); None = everyone.
    scope_userids: Mapped[Optional[list[str]]] = mapped_column(JSON)
    tag_id: Mapped[Optional[str]] = mapped_column(String(64))  # tag delivered customers with it (optional)
    send_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16), default=SCHEDULED)
    created_by: Mapped[str] = mapped_column(String(96))
    creator_userid: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    planning_started_at: Mapped[Optional[dt.datetime]]
    planned_at: Mapped[Optional[dt.datetime]]  # tasks and commands written
    sent_at: Mapped[Optional[dt.datetime]]  # every task answered by WeCom (or failed)
    finished_at: Mapped[Optional[dt.datetime]]
    follow_until: Mapped[Optional[dt.datetime]]
    cancelled_at: Mapped[Optional[dt.datetime]]
    cancelled_by: Mapped[Optional[str]] = mapped_column(String(96))
    plan_cursor: Mapped[int] = mapped_column(Integer, default=0)  # last customer (chat) id planned: resume point
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"stage", "done", "total"}
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # recipients by status and reason
    error: Mapped[Optional[str]] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<Campaign {self.id} {self.name!r} {self.status}>"


class CampaignTask(CorpScoped, Model):
    """One add_msg_template call: one sender and the planned recipients of that sender whose ids lie in
    [first_pk, last_pk] (recipients are split per sender in id order, so a task is an id range)."""

    __tablename__ = "campaign_tasks"
    __table_args__ = (
        UniqueConstraint("campaign_id", "sender_userid", "seq"),
        Index("ix_campaign_tasks_corp_msgid", "corp_id", "msgid"),
        Index("ix_campaign_tasks_status_next_poll", "status", "next_poll_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    sender_userid: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    first_pk: Mapped[int] = mapped_column(Integer)
    last_pk: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=T_PENDING)
    command_id: Mapped[Optional[int]] = mapped_column(Integer)  # the outbox command (no FK: wecom's table)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # commands written (again after expired media)
    msgid: Mapped[Optional[str]] = mapped_column(String(64))
    fail_count: Mapped[int] = mapped_column(Integer, default=0)  # add_msg_template's fail_list
    errcode: Mapped[Optional[int]] = mapped_column(Integer)
    error: Mapped[Optional[str]] = mapped_column(Text)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)  # every recipient has its final result
    notified: Mapped[bool] = mapped_column(Boolean, default=False)  # the sender got the app message
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    msg_created_at: Mapped[Optional[dt.datetime]]
    confirmed_at: Mapped[Optional[dt.datetime]]  # WeCom's send_time of the task
    polled_at: Mapped[Optional[dt.datetime]]
    next_poll_at: Mapped[Optional[dt.datetime]]
    polls: Mapped[int] = mapped_column(Integer, default=0)


class CampaignRecipient(CorpScoped, Model):
    """One customer (or chat) of a campaign. `target_pk` is `customers.id` (or `group_chats.id`), `target`
    WeCom's id of it; `sender_userid` who sends it (None when excluded for want of one).

    No foreign key on `campaign_id`: a million rows are written per campaign, and PostgreSQL would check
    each against `campaigns` (a third of the insert's time); campaigns are never deleted."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "target_pk"),
        Index("ix_campaign_recipients_campaign_sender", "campaign_id", "sender_userid", "target_pk"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    target_pk: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(64))
    sender_userid: Mapped[Optional[str]] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[Optional[str]] = mapped_column(String(16))
    sent_at: Mapped[Optional[dt.datetime]]


class CampaignReminder(CorpScoped, Model):
    """Senders reminded to confirm (remind_groupmsg_send for every unconfirmed task of the campaign)."""

    __tablename__ = "campaign_reminders"
    __table_args__ = (Index("ix_campaign_reminders_campaign_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(96))
    tasks: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)  # tasks WeCom refused (41094 and the like)


class ForeignMessage(CorpScoped, Model):
    """A mass message in WeCom that this product did not send (a member's own, another tool's): read so
    that what its recipients received counts against their quota. `final` once every task was sent."""

    __tablename__ = "campaign_foreign_messages"
    __table_args__ = (UniqueConstraint("corp_id", "msgid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    msgid: Mapped[str] = mapped_column(String(64))
    chat_type: Mapped[str] = mapped_column(String(8))
    create_type: Mapped[int] = mapped_column(Integer, default=1)
    creator: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[Optional[dt.datetime]]


class ForeignReceipt(CorpScoped, Model):
    """A customer (or chat) that received a foreign mass message, and when."""

    __tablename__ = "campaign_foreign_receipts"
    __table_args__ = (
        UniqueConstraint("corp_id", "msgid", "target"),
        Index("ix_campaign_foreign_receipts_corp_target_pk", "corp_id", "target_pk", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    msgid: Mapped[str] = mapped_column(String(64))
    chat_type: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(64))
    target_pk: Mapped[Optional[int]] = mapped_column(Integer)  # customers.id / group_chats.id when known here
    sent_at: Mapped[dt.datetime]
