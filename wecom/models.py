"""Tables of the WeCom protocol layer: the shared token/ticket cache, the callback inbox and the
outbox of commands to send."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, db, utcnow


class CachedCredential(CorpScoped, db.Model):
    """An access token or JS-SDK ticket, shared by every process of the deployment.

    Keyed by corp, kind (access_token, jsapi_ticket, agent_ticket) and a SHA-256 of the secret,
    so the contact secret and the agent secret never share (or overwrite) a token.
    """

    __tablename__ = "wecom_credentials"
    __table_args__ = (UniqueConstraint("corp_id", "kind", "secret_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime]
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InboxEvent(CorpScoped, db.Model):
    """A callback received from WeCom, stored before anything is done with it.

    One row per distinct decrypted plaintext: `payload_hash` is the SHA-256 of the WHOLE
    plaintext, unique per corp, so WeCom's retries of one delivery land on the same row
    (counted in `duplicates`) while two different events of the same second never collide.
    The worker claims rows (`claimed_by`, `claimed_until` as a lease) whose status is pending
    and whose `next_attempt_at` has come, and marks them done or failed.
    """

    __tablename__ = "wecom_inbox"
    __table_args__ = (
        UniqueConstraint("corp_id", "payload_hash"),
        Index("ix_wecom_inbox_status_next_attempt", "status", "next_attempt_at"),
    )

    STATUSES = ("pending", "done", "failed", "ignored")

    id: Mapped[int] = mapped_column(primary_key=True)
    payload_hash: Mapped[str] = mapped_column(String(64))
    # Event (or InfoType / MsgType when there is no Event) and ChangeType, '' when absent.
    event: Mapped[str] = mapped_column(String(64), default="")
    change_type: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[str] = mapped_column(Text)  # the decrypted plaintext XML, as received
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # its parsed fields
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)  # repeats of this same payload
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[dt.datetime]]
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    processed_at: Mapped[Optional[dt.datetime]]
    claimed_by: Mapped[Optional[str]] = mapped_column(String(128))
    claimed_until: Mapped[Optional[dt.datetime]]
    # When the event must be handled by: an add with a WelcomeCode (20 s to send the welcome).
    # Claims take the nearest deadline first, so a backlog does not make welcomes expire.
    deadline: Mapped[Optional[dt.datetime]]

    def __repr__(self) -> str:
        return f"<InboxEvent {self.id} {self.event}/{self.change_type} {self.status}>"


class OutboxCommand(CorpScoped, db.Model):
    """A write that must reach WeCom, recorded in the same transaction as the local change.

    The worker claims pending commands whose `next_attempt_at` has come (`claimed_by`,
    `claimed_until` as a lease), calls the `wecom.commands` entry of `method` with `args` on the
    "contact" or "agent" client, and marks the command done (with WeCom's answer in `result`) or failed
    (`last_errcode`, `last_error`). Transient failures are retried with backoff; a command past
    `not_after` is failed as "expired" without being sent. A repeatable command is delivered at least
    once; one that must not be sent twice is reconciled with WeCom before any second send (`sending_at`).

    `dedupe_key` is unique per corp among pending commands (a partial unique index), so the same
    intent cannot wait twice. `relation_id` names the follow relation a command changes, so the
    full sync and the event handlers leave that relation's local state alone while it waits.
    """

    __tablename__ = "wecom_outbox"
    __table_args__ = (
        Index("ix_wecom_outbox_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_wecom_outbox_corp_relation_status", "corp_id", "relation_id", "status"),
        Index("uq_wecom_outbox_pending_dedupe", "corp_id", "dedupe_key", unique=True,
              postgresql_where=text("status = 'pending' AND dedupe_key IS NOT NULL"),
              sqlite_where=text("status = 'pending' AND dedupe_key IS NOT NULL")),
    )

    STATUSES = ("pending", "done", "failed")

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # what the feature calls it: mark_tag, welcome, …
    client: Mapped[str] = mapped_column(String(16), default="contact")  # contact | agent
    method: Mapped[str] = mapped_column(String(64))  # a WeComClient method name
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # its keyword arguments
    relation_id: Mapped[Optional[int]] = mapped_column(Integer)  # crm follow_relations.id (no FK: wecom is below crm)
    dedupe_key: Mapped[Optional[str]] = mapped_column(String(191))
    not_after: Mapped[Optional[dt.datetime]]  # deadline: after it the command is failed "expired", never sent
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[dt.datetime]]
    last_errcode: Mapped[Optional[int]] = mapped_column(Integer)
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    result: Mapped[Optional[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[Optional[dt.datetime]]
    claimed_by: Mapped[Optional[str]] = mapped_column(String(128))
    claimed_until: Mapped[Optional[dt.datetime]]
    # Set (and committed) just before a command that must not be sent twice goes to WeCom, cleared
    # when WeCom's answer is recorded: a pending command with it set may have reached WeCom, so it is
    # reconciled by reading WeCom before anything is sent again (`wecom.commands`).
    sending_at: Mapped[Optional[dt.datetime]]

    def __repr__(self) -> str:
        return f"<OutboxCommand {self.id} {self.kind} {self.method} {self.status}>"
