"""Tables of the handover package: transfer jobs, what each customer and chat of a job went through, the
local log of transfers (WeCom's 90-day and daily limits are checked from it before anything is sent), the
resigned colleagues' customers and chats waiting for a takeover, and the corp's handover settings.

- `HandoverJob`: one handover a manager started: whose customers (and chats), to whom, how distributed;
- `HandoverCustomer`: one customer of a job: cannot move (and why), queued in an outbox command of ≤100,
  waiting for WeCom's 24 h, then taken over, refused, at the limit, without a record, or failed. The table
  that grows with the job (10,000 customers), narrow and written set-based;
- `HandoverChat`: one customer group chat of a job: cannot move, queued, moved or failed;
- `TransferLog`: every transfer WeCom accepted (a customer or a chat), append-only;
- `WaitingItem`: what `get_unassigned_list` and `groupchat/list` (status 1) last said waits for a takeover;
- `WaitingRefresh`: each refresh of that list (requested, running, done, failed), for the page;
- `HandoverSettings`: the takeover's customer limit checked before sending (WeCom's is 50,000).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow

RESIGNED, ONJOB = "resigned", "onjob"
KINDS = (RESIGNED, ONJOB)

# Job status: running until every customer and chat is final, then done (a retry opens it again).
RUNNING, DONE = "running", "done"

# Customer status. Final: excluded, done, refused, limit, no_record, failed.
C_EXCLUDED, C_QUEUED, C_WAITING = "excluded", "queued", "waiting"
C_DONE, C_REFUSED, C_LIMIT, C_NO_RECORD, C_FAILED = "done", "refused", "limit", "no_record", "failed"
CUSTOMER_STATUSES = (C_EXCLUDED, C_QUEUED, C_WAITING, C_DONE, C_REFUSED, C_LIMIT, C_NO_RECORD, C_FAILED)
OPEN_CUSTOMER = (C_QUEUED, C_WAITING)
RETRYABLE_CUSTOMER = (C_EXCLUDED, C_REFUSED, C_LIMIT, C_NO_RECORD, C_FAILED)
# transfer_result's status (wecom-api.md §5.2) → ours
WECOM_STATUS = {1: C_DONE, 2: C_WAITING, 3: C_REFUSED, 4: C_LIMIT, 5: C_NO_RECORD}

# Chat status. Final: excluded, done, failed.
H_EXCLUDED, H_QUEUED, H_DONE, H_FAILED = "excluded", "queued", "done", "failed"
CHAT_STATUSES = (H_EXCLUDED, H_QUEUED, H_DONE, H_FAILED)
RETRYABLE_CHAT = (H_EXCLUDED, H_FAILED)

# What became of the tags of the old relation on the takeover's: nothing to do (none), waiting for WeCom's
# view of the new relation (the takeover's add_external_contact), done (re-applied where WeCom did not carry).
TAGS_NONE, TAGS_WAITING, TAGS_DONE = "none", "waiting", "done"

SUBJECT_CUSTOMER, SUBJECT_CHAT = "customer", "chat"


class HandoverSettings(CorpScoped, Model):
    """The corp's handover rules: a takeover is not given customers beyond `customer_limit` (counted from
    their active customers and those on their way to them), checked before anything is sent."""

    __tablename__ = "handover_settings"
    __table_args__ = (UniqueConstraint("corp_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_limit: Mapped[int] = mapped_column(Integer, default=50_000)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(96), default="")


class HandoverJob(CorpScoped, Model):
    """A handover as the manager started it, and where it stands (`counts` is kept up to date)."""

    __tablename__ = "handover_jobs"
    __table_args__ = (
        Index("ix_handover_jobs_corp_created", "corp_id", "created_at"),
        Index("ix_handover_jobs_corp_status", "corp_id", "status"),
        Index("ix_handover_jobs_corp_handover", "corp_id", "handover_userid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # resigned | onjob
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userids: Mapped[list[str]] = mapped_column(JSON, default=list)  # every takeover the job used
    distribution: Mapped[str] = mapped_column(String(12), default="even")  # even | load | department
    notice: Mapped[str] = mapped_column(Text, default="")  # transfer_success_msg (on-job); '' = WeCom's default
    group_chats: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(12), default=RUNNING)
    round: Mapped[int] = mapped_column(Integer, default=1)  # 1, then one more per retry / reassign
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(96))  # the actor (userid, token:NAME)
    creator_userid: Mapped[Optional[str]] = mapped_column(String(64))  # told when the job ends
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]]


class HandoverCustomer(CorpScoped, Model):
    """One customer of a job (see the module docstring); `command_id` is the outbox command (≤100
    customers, one (handover, takeover) pair) that carries it."""

    __tablename__ = "handover_customers"
    __table_args__ = (
        UniqueConstraint("job_id", "external_userid"),
        Index("ix_handover_customers_job_status", "job_id", "status"),
        Index("ix_handover_customers_corp_ext_status", "corp_id", "external_userid", "status"),
        Index("ix_handover_customers_corp_status_poll", "corp_id", "status", "poll_after"),
        Index("ix_handover_customers_command", "command_id"),
        Index("ix_handover_customers_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("handover_jobs.id", ondelete="CASCADE"))
    external_userid: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[Optional[int]] = mapped_column(Integer)  # crm customers.id, when known locally
    from_relation_id: Mapped[Optional[int]] = mapped_column(Integer)  # the handover member's relation
    takeover_userid: Mapped[Optional[str]] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12))
    errcode: Mapped[Optional[int]] = mapped_column(Integer)
    reason: Mapped[Optional[str]] = mapped_column(String(32))  # why it cannot move / failed (see planning.REASONS)
    command_id: Mapped[Optional[int]] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[Optional[dt.datetime]]  # WeCom accepted the transfer
    takeover_at: Mapped[Optional[dt.datetime]]  # WeCom's takeover time: expected while waiting, then actual
    poll_after: Mapped[Optional[dt.datetime]]
    finished_at: Mapped[Optional[dt.datetime]]
    tags_state: Mapped[str] = mapped_column(String(8), default=TAGS_NONE)
    noted: Mapped[bool] = mapped_column(Boolean, default=False)  # the handover note is in the customer's follow-ups


class HandoverChat(CorpScoped, Model):
    """One customer group chat of a job (see the module docstring)."""

    __tablename__ = "handover_chats"
    __table_args__ = (
        UniqueConstraint("job_id", "chat_id"),
        Index("ix_handover_chats_command", "command_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("handover_jobs.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    new_owner: Mapped[Optional[str]] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12))
    errcode: Mapped[Optional[int]] = mapped_column(Integer)
    reason: Mapped[Optional[str]] = mapped_column(String(32))
    command_id: Mapped[Optional[int]] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[Optional[dt.datetime]]


class TransferLog(CorpScoped, Model):
    """A transfer WeCom accepted (errcode 0 for a customer, not in failed_chat_list for a chat). Append-only:
    the 90-day rule (2 on-job transfers per customer or chat) and the 300 chats a day per owner are checked
    from it before anything is sent."""

    __tablename__ = "handover_transfer_log"
    __table_args__ = (
        Index("ix_handover_transfer_log_target", "corp_id", "subject", "target", "started_at"),
        Index("ix_handover_transfer_log_from", "corp_id", "subject", "handover_userid", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(8))  # customer | chat
    target: Mapped[str] = mapped_column(String(64))  # external_userid | chat_id
    kind: Mapped[str] = mapped_column(String(8))  # resigned | onjob
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[Optional[int]] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WaitingItem(CorpScoped, Model):
    """A customer (`get_unassigned_list`) or chat (`groupchat/list`, status 1) of a resigned member that
    waits for a takeover, as WeCom last listed it."""

    __tablename__ = "handover_waiting"
    __table_args__ = (
        UniqueConstraint("corp_id", "subject", "handover_userid", "target"),
        Index("ix_handover_waiting_corp_handover", "corp_id", "handover_userid", "subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(8))  # customer | chat
    handover_userid: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))  # external_userid | chat_id
    dimission_at: Mapped[Optional[dt.datetime]]
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WaitingRefresh(CorpScoped, Model):
    """One refresh of the waiting list: requested (a button, a resignation), running, done or failed."""

    __tablename__ = "handover_refreshes"
    __table_args__ = (Index("ix_handover_refreshes_corp_requested", "corp_id", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="requested")  # requested | done | failed
    reason: Mapped[str] = mapped_column(String(32), default="schedule")  # schedule | manual | resigned | cli
    requested_by: Mapped[str] = mapped_column(String(96), default="")
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]]
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # customers, chats, staff, calls
    error: Mapped[Optional[str]] = mapped_column(Text)
