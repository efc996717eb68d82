"""Tables of the WeCom protocol layer: the shared token/ticket cache."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text, UniqueConstraint
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
