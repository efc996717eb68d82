"""Tables of the WeCom protocol layer: the shared token/ticket cache and the callback inbox."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from extensions import CorpScoped, db, utcnow


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

    def __repr__(self) -> str:
        return f"<InboxEvent {self.id} {self.event}/{self.change_type} {self.status}>"
