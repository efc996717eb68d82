"""Who is asking and what they may see: roles, API tokens, sign-in sessions and visibility scopes.

Services flush; the request, job or command that calls them commits once.

- A staff member's role is read from `staff_roles` on every request (`role_of`), default `staff`.
- An API token is a random secret shown once; only its SHA-256 is stored (`create_api_token`).
- A browser session is a random id kept in the signed cookie and a `user_sessions` row that makes
  it valid (`start_session`, `session_principal`): signing out ends that session, a change of role
  and a resignation end every session of the person and revoke the tokens that act as them.
- `scope_for(principal)`: whose customers a principal sees (see `Scope`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import select, update

from core.db import db, rowcount, utcnow
from core.errors import UserValueError
from core.signals import StaffResigned
from crm.models import Staff
from crm.service import audit

from .models import ApiToken, StaffRole, UserSession

log = logging.getLogger("scrm.identity")

ROLES = ("admin", "manager", "marketer", "staff")
ROLE_LABELS = {"admin": "管理员", "manager": "主管", "marketer": "营销", "staff": "员工"}
SEE_ALL_ROLES = ("admin", "marketer")  # marketers build segments over the whole customer base
SESSION_MAX_AGE = dt.timedelta(hours=12)  # a stale session signs in again (silently inside WeCom)
TOUCH_GRANULARITY = dt.timedelta(minutes=1)


@dataclass
class Principal:
    """The signed-in staff member, or the system behind an API token."""

    corp_id: str
    role: str
    userid: str | None
    via: str  # "session" | "token"
    token_name: str | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        """How audit rows name this principal."""
        return f"token:{self.token_name}" if self.via == "token" else (self.userid or "?")

    def has_role(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------- roles


def role_of(corp_id: str, userid: str) -> str:
    row = db.session.scalar(select(StaffRole.role).where(StaffRole.corp_id == corp_id, StaffRole.userid == userid))
    return row or "staff"


def set_role(corp_id: str, userid: str, role: str, granted_by: str) -> StaffRole:
    """Give `userid` a role (flush only). A change ends the person's sessions: they sign in again
    with what the new role allows."""
    if role not in ROLES:
        raise UserValueError(f"未知角色 {role!r}，可选：{', '.join(ROLES)}", field="role")
    if not userid or len(userid) > 64:
        raise UserValueError("请选择成员", field="userid")
    row = db.session.scalar(select(StaffRole).where(StaffRole.corp_id == corp_id, StaffRole.userid == userid))
    before = row.role if row else "staff"
    if row is None:
        row = StaffRole(corp_id=corp_id, userid=userid, role=role, granted_by=granted_by)
        db.session.add(row)
    row.role, row.granted_by = role, granted_by
    audit(corp_id, granted_by, "role.set", "staff", userid, {"from": before, "to": role})
    if before != role:
        revoke_sessions(corp_id, userid, "role_changed")
    db.session.flush()
    return row


# ---------------------------------------------------------------- API tokens


def create_api_token(corp_id: str, name: str, role: str, userid: str | None = None,
                     actor: str = "cli") -> tuple[ApiToken, str]:
    """Make a token; return the row and the secret, which is shown once and stored only hashed."""
    if role not in ROLES:
        raise UserValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "staff" and not userid:
        raise UserValueError("a staff token acts as a staff member: give --userid")
    if not name.strip():
        raise UserValueError("give the token a --name so it can be recognised and revoked later")
    secret = "scrm_" + secrets.token_urlsafe(32)
    row = ApiToken(corp_id=corp_id, name=name.strip(), role=role, userid=userid, token_hash=_hash(secret))
    db.session.add(row)
    audit(corp_id, actor, "token.create", "api_token", name, {"role": role, "userid": userid})
    db.session.flush()
    return row, secret


def find_api_token(secret: str) -> ApiToken | None:
    """The live token for this secret, or None; notes when it was last used (at most once a minute)."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_GRANULARITY:
        # Its own short transaction: a read request must not hold a write lock (SQLite) or a row
        # lock (PostgreSQL) on the token for the rest of the request.
        with db.engine.begin() as conn:
            conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        db.session.expire(row, ["last_used_at"])
    return row


def revoke_tokens(corp_id: str, userid: str, actor: str) -> int:
    """Revoke every live token that acts as `userid`; how many (flush)."""
    result = db.session.execute(update(ApiToken).where(ApiToken.corp_id == corp_id, ApiToken.userid == userid,
                                                       ApiToken.revoked_at.is_(None))
                                .values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    count = rowcount(result)
    if count:
        audit(corp_id, actor, "token.revoke", "staff", userid, {"count": count})
    return count


# ---------------------------------------------------------------- sessions


def start_session(corp_id: str, userid: str) -> str:
    """Record a new signed-in session for `userid`; the random id to keep in the signed cookie (flush)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(corp_id=corp_id, userid=userid, sid_hash=_hash(sid), created_at=now,
                               last_seen_at=now, expires_at=now + SESSION_MAX_AGE))
    db.session.flush()
    return sid


def find_session(corp_id: str, sid: str) -> UserSession | None:
    """The live session with this id (not revoked, not expired), or None; notes when it was last seen."""
    row = db.session.scalar(select(UserSession).where(UserSession.sid_hash == _hash(sid),
                                                      UserSession.corp_id == corp_id))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at is None or now - row.last_seen_at > TOUCH_GRANULARITY:
        with db.engine.begin() as conn:  # its own short transaction, like a token's use
            conn.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
        db.session.expire(row, ["last_seen_at"])
    return row


def end_session(corp_id: str, sid: str) -> None:
    """Sign one session out (flush); the cookie that carried it is refused from now on."""
    db.session.execute(update(UserSession).where(UserSession.corp_id == corp_id, UserSession.sid_hash == _hash(sid),
                                                 UserSession.revoked_at.is_(None))
                       .values(revoked_at=utcnow(), revoked_reason="signed_out")
                       .execution_options(synchronize_session=False))


def revoke_sessions(corp_id: str, userid: str, reason: str) -> int:
    """End every live session of `userid` (flush); how many."""
    result = db.session.execute(update(UserSession).where(UserSession.corp_id == corp_id,
                                                          UserSession.userid == userid,
                                                          UserSession.revoked_at.is_(None))
                                .values(revoked_at=utcnow(), revoked_reason=reason)
                                .execution_options(synchronize_session=False))
    count = rowcount(result)
    if count:
        log.info("identity.sessions.revoked corp=%s userid=%s count=%s reason=%s", corp_id, userid, count, reason)
    return count


def on_staff_resigned(event: StaffResigned) -> None:
    """Subscriber: a staff member who left loses the sidebar, the console and their API tokens at once."""
    sessions = revoke_sessions(event.corp_id, event.userid, "resigned")
    tokens = revoke_tokens(event.corp_id, event.userid, "wecom")
    audit(event.corp_id, "wecom", "staff.access_revoked", "staff", event.userid,
          {"sessions": sessions, "tokens": tokens})


def staff_of(corp_id: str, userid: str) -> Staff | None:
    return db.session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.userid == userid))


# ---------------------------------------------------------------- visibility


@dataclass
class Scope:
    """Whose customers a principal sees: everyone's (`all`), or those of `userids`.

    staff: their own; manager: their own, their direct reports' (`Staff.manager_userid`) and
    those of staff sharing one of their departments; admin and marketer: all.
    """

    all: bool
    userids: frozenset[str] = field(default_factory=frozenset)

    def allows_any(self, userids: Iterable[str]) -> bool:
        return self.all or any(u in self.userids for u in userids)

    def allows(self, userid: str) -> bool:
        return self.all or userid in self.userids


def compute_scope(principal: Principal) -> Scope:
    """The scope of a principal, read from the staff table (see `Scope`)."""
    if principal.role in SEE_ALL_ROLES:
        return Scope(all=True)
    if not principal.userid:
        return Scope(all=False)
    if principal.role != "manager":
        return Scope(all=False, userids=frozenset({principal.userid}))
    rows = db.session.execute(select(Staff.userid, Staff.department_ids, Staff.manager_userid)
                              .where(Staff.corp_id == principal.corp_id)).all()
    mine = next((set(d or []) for u, d, _ in rows if u == principal.userid), set())
    team = {u for u, depts, mgr in rows if mgr == principal.userid or (mine & set(depts or []))}
    return Scope(all=False, userids=frozenset(team | {principal.userid}))
