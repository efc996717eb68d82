"""State changes of the customer base. Services flush; the request or command commits once."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from extensions import db, utcnow

from .models import ApiToken, AuditLog, Corp

ROLES = ("admin", "manager", "marketer", "staff")
TOKEN_USE_GRANULARITY = dt.timedelta(minutes=1)


class UserValueError(ValueError):
    """A problem with what the user asked for, worded for them."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_corp(corp_id: str, name: str = "") -> Corp:
    """The corp's row, created if missing; safe when the worker and a request create it at once."""
    corp = db.session.get(Corp, corp_id)
    if corp is None:
        insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        db.session.execute(insert(Corp).values(corp_id=corp_id, name=name, created_at=utcnow())
                           .on_conflict_do_nothing(index_elements=["corp_id"]))
        corp = db.session.get(Corp, corp_id)
        assert corp is not None
    return corp


def create_api_token(corp_id: str, name: str, role: str, userid: str | None = None) -> tuple[ApiToken, str]:
    """Make a token; return the row and the secret, which is shown once and stored only hashed."""
    if role not in ROLES:
        raise UserValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "staff" and not userid:
        raise UserValueError("a staff token acts as a staff member: give --userid")
    if not name.strip():
        raise UserValueError("give the token a --name so it can be recognised and revoked later")
    secret = "scrm_" + secrets.token_urlsafe(32)
    row = ApiToken(corp_id=corp_id, name=name.strip(), role=role, userid=userid, token_hash=hash_token(secret))
    db.session.add(row)
    audit(corp_id, "cli", "token.create", "api_token", name, {"role": role, "userid": userid})
    db.session.flush()
    return row, secret


def find_api_token(secret: str) -> ApiToken | None:
    """The live token for this secret, or None; notes when it was last used (at most once a minute)."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_GRANULARITY:
        # Its own short transaction: a read request must not hold a write lock (SQLite) or a row
        # lock (PostgreSQL) on the token for the rest of the request.
        with db.engine.begin() as conn:
            conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        db.session.expire(row, ["last_used_at"])
    return row


def audit(corp_id: str, actor: str, action: str, target_type: str, target_id: str,
          detail: dict[str, Any] | None = None) -> AuditLog:
    row = AuditLog(corp_id=corp_id, actor=actor, action=action, target_type=target_type,
                   target_id=str(target_id), detail=detail or {})
    db.session.add(row)
    return row
