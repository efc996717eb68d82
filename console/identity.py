"""Who is asking: the signed session (staff signed in through WeCom) or an API bearer token.

Shared by the sidebar, the console pages of every feature and the JSON API:

- `current_principal()` → `Principal | None` (bearer token first, then the session);
- `login_required(kind)` / `require_role(*roles)` view decorators;
- `csrf_token()` for forms and pages, `check_csrf()` for writes made with the session;
- `scope_for(principal)` → which staff members' customers the principal may see.

Sessions are Flask's signed, HttpOnly cookies holding only the userid, the corp, the CSRF
token and the sign-in time; the role is read from `staff_roles` on each request, so a role
change takes effect at once.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlencode

from flask import abort, has_request_context, jsonify, redirect, request, session, url_for
from sqlalchemy import select

from crm.models import Staff
from crm.service import ROLES, find_api_token
from extensions import db, settings

from .models import StaffRole

log = logging.getLogger("scrm.console")

SESSION_MAX_AGE = 12 * 3600  # seconds; a stale session signs in again (silently inside WeCom)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SEE_ALL_ROLES = ("admin", "marketer")
_PRINCIPAL = "scrm.principal"
_SCOPE = "scrm.scope"  # marketers build segments over the whole customer base

F = TypeVar("F", bound=Callable[..., Any])


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


def role_of(corp_id: str, userid: str) -> str:
    row = db.session.scalar(select(StaffRole.role).where(StaffRole.corp_id == corp_id, StaffRole.userid == userid))
    return row or "staff"


def set_role(corp_id: str, userid: str, role: str, granted_by: str) -> StaffRole:
    """Give `userid` a role (flush only; the caller commits)."""
    from crm.service import UserValueError, audit

    if role not in ROLES:
        raise UserValueError(f"未知角色 {role!r}，可选：{', '.join(ROLES)}")
    row = db.session.scalar(select(StaffRole).where(StaffRole.corp_id == corp_id, StaffRole.userid == userid))
    before = row.role if row else "staff"
    if row is None:
        row = StaffRole(corp_id=corp_id, userid=userid, role=role, granted_by=granted_by)
        db.session.add(row)
    row.role, row.granted_by = role, granted_by
    audit(corp_id, granted_by, "role.set", "staff", userid, {"from": before, "to": role})
    db.session.flush()
    return row


# ---------------------------------------------------------------- session


def login_session(userid: str) -> None:
    """Start a fresh session for `userid` (a new CSRF token; nothing of the old session survives)."""
    session.clear()
    session.permanent = True
    session["uid"] = userid
    session["corp"] = settings().WECOM_CORP_ID
    session["csrf"] = secrets.token_urlsafe(24)
    session["at"] = int(time.time())
    request.environ.pop(_PRINCIPAL, None)


def logout_session() -> None:
    session.clear()
    request.environ.pop(_PRINCIPAL, None)


def _principal_from_token() -> Principal | None | bool:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return False
    row = find_api_token(secret.strip())
    if row is None or row.corp_id != settings().WECOM_CORP_ID:
        return False
    return Principal(corp_id=row.corp_id, role=row.role, userid=row.userid, via="token", token_name=row.name)


def _principal_from_session() -> Principal | None:
    userid, corp_id = session.get("uid"), session.get("corp")
    if not userid or corp_id != settings().WECOM_CORP_ID:
        return None
    if int(time.time()) - int(session.get("at", 0)) > SESSION_MAX_AGE:
        return None
    staff = db.session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.userid == userid))
    if staff is not None and staff.status == "resigned":
        return None
    return Principal(corp_id=corp_id, role=role_of(corp_id, userid), userid=userid, via="session",
                     name=staff.name if staff is not None else "")


def current_principal() -> Principal | None:
    """The principal of this request (cached per request); a bad bearer token is no principal at all."""
    cache = request.environ  # per request (an app context may outlive one request in tests and CLI)
    if _PRINCIPAL not in cache:
        found = _principal_from_token()
        if found is None:
            found = _principal_from_session()
        cache[_PRINCIPAL] = found or None
    return cache[_PRINCIPAL]


# ---------------------------------------------------------------- CSRF


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> bool:
    """True when the request carries the session's token (header for JSON, field for forms)."""
    expected = session.get("csrf")
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return bool(expected) and hmac.compare_digest(str(expected), str(given))


# ---------------------------------------------------------------- decorators


def safe_next(target: str | None, default: str = "/") -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def login_url(kind: str, next_path: str) -> str:
    """Where an anonymous visitor of a `kind` ("sidebar" | "console") page goes to sign in."""
    if kind == "sidebar":
        return url_for("auth.start", mode="oauth", next=next_path)
    return url_for("console.login") + "?" + urlencode({"next": next_path})


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def login_required(kind: str = "console") -> Callable[[F], F]:
    """Pages: redirect to sign-in; JSON: 401. Writes made with the session need the CSRF token."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if _wants_json():
                    return jsonify(error={"code": "unauthorized", "message": "请先登录，或提供有效的 API 令牌"}), 401
                return redirect(login_url(kind, request.full_path.rstrip("?")))
            if principal.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS") and not check_csrf():
                log.warning("console.csrf.rejected path=%s userid=%s", request.path, principal.userid)
                if _wants_json():
                    return jsonify(error={"code": "csrf", "message": "页面已过期，请刷新后重试"}), 403
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def require_role(*roles: str, kind: str = "console") -> Callable[[F], F]:
    """Like `login_required`, and the principal must hold one of `roles` (admin always may)."""

    def decorator(view: F) -> F:
        @login_required(kind)
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            assert principal is not None
            if not principal.has_role(*roles):
                if _wants_json():
                    return jsonify(error={"code": "forbidden", "message": "您的角色无权进行此操作"}), 403
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


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


def scope_for(principal: Principal) -> Scope:
    if principal.role in SEE_ALL_ROLES:
        return Scope(all=True)
    if not principal.userid:
        return Scope(all=False)
    if principal.role != "manager":
        return Scope(all=False, userids=frozenset({principal.userid}))
    cached = request.environ.get(_SCOPE) if has_request_context() else None
    if cached is not None and cached[0] == principal.userid:
        return cached[1]
    rows = db.session.execute(select(Staff.userid, Staff.department_ids, Staff.manager_userid)
                              .where(Staff.corp_id == principal.corp_id)).all()
    mine = next((set(d or []) for u, d, _ in rows if u == principal.userid), set())
    team = {u for u, depts, mgr in rows if mgr == principal.userid or (mine & set(depts or []))}
    scope = Scope(all=False, userids=frozenset(team | {principal.userid}))
    if has_request_context():
        request.environ[_SCOPE] = (principal.userid, scope)
    return scope
