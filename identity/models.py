"""Who may do what: roles of staff members, API tokens for other systems, and sign-in sessions.

A staff member without a `StaffRole` row has the role `staff`. Roles are set in the console
(角色与权限, admins only) or with `flask roles grant USERID ROLE`; API tokens carry their own role.
A signed-in browser holds the random id of a `UserSession` row in its signed cookie; the row is
what makes the cookie valid, so signing out, a change of role and a resignation end it at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import CorpScoped, Model, utcnow


class StaffRole(CorpScoped, Model):
    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("corp_id", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | manager | marketer | staff
    granted_by: Mapped[str] = mapped_column(String(96), default="")
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(CorpScoped, Model):
    """A bearer token for other systems; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | manager | marketer | staff
    userid: Mapped[Optional[str]] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[dt.datetime]]
    revoked_at: Mapped[Optional[dt.datetime]]


class UserSession(CorpScoped, Model):
    """A signed-in browser (the sidebar inside WeCom, or the console); only a hash of its id is stored."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_corp_userid", "corp_id", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    userid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    last_seen_at: Mapped[Optional[dt.datetime]]
    revoked_at: Mapped[Optional[dt.datetime]]
    # signed_out | role_changed | resigned | expired
    revoked_reason: Mapped[Optional[str]] = mapped_column(String(32))
