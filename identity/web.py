"""Who is asking, per request: the bearer token or the signed session, with its CSRF token; the view
decorators every page and API route uses.

- `current_principal()` → `Principal | None` (bearer token first, then the session);
- `login_required(kind)` / `require_role(*roles)`: pages redirect to sign-in, JSON answers 401/403;
- `csrf_token()` for forms and pages, `check_csrf()` for writes made with the session;
- `scope_for(principal)` → which staff members' customers the principal may see (cached per request);
- `sign_in(userid)` / `sign_out()`: start a server-side session and keep its id in the cookie.

The signed cookie holds only the session id, the corp and the CSRF token; the `user_sessions` row is
what makes it valid, so a cookie replayed after signing out is refused.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from typing import Any, Callable, TypeVar
from urllib.parse import urlencode

from flask import abort, current_app, has_request_context, redirect, request, session, url_for

from core.errors import Forbidden, Unauthorized
from core.settings import settings

from .service import (Principal, Scope, compute_scope, end_session, find_api_token, find_session, role_of,
                      staff_of, start_session)

log = logging.getLogger("scrm.identity")

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_PRINCIPAL = "scrm.principal"
_SCOPE = "scrm.scope"

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------- session


def sign_in(userid: str) -> None:
    """Start a fresh session for `userid` (a new CSRF token; nothing of the old session survives)."""
    corp_id = settings().WECOM_CORP_ID
    sid = start_session(corp_id, userid)
    session.clear()
    session.permanent = True
    session["sid"] = sid
    session["corp"] = corp_id
    session["csrf"] = secrets.token_urlsafe(24)
    request.environ.pop(_PRINCIPAL, None)


def sign_out() -> None:
    """End this browser's session on the server (the same cookie is refused afterwards) and clear it."""
    sid, corp_id = session.get("sid"), session.get("corp")
    if sid and corp_id:
        end_session(str(corp_id), str(sid))
    session.clear()
    request.environ.pop(_PRINCIPAL, None)


def _principal_from_token() -> Principal | None | bool:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip() or len(secret) > 256:
        return False
    row = find_api_token(secret.strip())
    if row is None or row.corp_id != settings().WECOM_CORP_ID:
        return False
    if row.userid:
        staff = staff_of(row.corp_id, row.userid)
        if staff is not None and staff.status == "resigned":
            return False
    return Principal(corp_id=row.corp_id, role=row.role, userid=row.userid, via="token", token_name=row.name)


def _principal_from_session() -> Principal | None:
    sid, corp_id = session.get("sid"), session.get("corp")
    if not sid or not isinstance(sid, str) or corp_id != settings().WECOM_CORP_ID:
        return None
    row = find_session(corp_id, sid)
    if row is None:
        return None
    staff = staff_of(corp_id, row.userid)
    if staff is not None and staff.status == "resigned":
        return None
    return Principal(corp_id=corp_id, role=role_of(corp_id, row.userid), userid=row.userid, via="session",
                     name=staff.name if staff is not None else "")


def current_principal() -> Principal | None:
    """The principal of this request (cached per request); a bad bearer token is no principal at all."""
    cache = request.environ  # per request (an app context may outlive one request in tests and CLI)
    if _PRINCIPAL not in cache:
        found = _principal_from_token()
        if found is None:
            found = _principal_from_session()
        cache[_PRINCIPAL] = found or None
    principal: Principal | None = cache[_PRINCIPAL]
    return principal


def principal() -> Principal:
    """The principal of a view behind `login_required` (never None there)."""
    found = current_principal()
    if found is None:  # a view without the decorator: a wiring mistake, answered like no sign-in
        raise Unauthorized("请先登录，或提供有效的 API 令牌")
    return found


# ---------------------------------------------------------------- CSRF


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


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


def wants_json() -> bool:
    """The JSON API (under /api/, or a route of an API blueprint elsewhere) and clients that ask for JSON."""
    return (request.path.startswith("/api/") or request.blueprint in current_app.extensions.get("scrm.api.blueprints", ())
            or request.accept_mimetypes.best == "application/json")


def login_required(kind: str = "console") -> Callable[[F], F]:
    """Pages: redirect to sign-in; JSON: 401. Writes made with the session need the CSRF token."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            found = current_principal()
            if found is None:
                if wants_json():
                    raise Unauthorized("请先登录，或提供有效的 API 令牌")
                return redirect(login_url(kind, request.full_path.rstrip("?")))
            if found.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS") and not check_csrf():
                log.warning("identity.csrf.rejected path=%s userid=%s", request.path, found.userid)
                raise Forbidden("页面已过期，请刷新后重试", fields={"csrf": ["缺少或错误的 CSRF 令牌"]})
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


ROLE_NAMES = {"admin": "管理员", "manager": "主管", "marketer": "营销", "staff": "员工"}


def _document_roles(view: Any, roles: tuple[str, ...]) -> None:
    """Say in the OpenAPI document (the operation's description) which roles may call a JSON route."""
    doc = getattr(view, "_apidoc", None)
    if doc is None:  # a page, not an API route
        return
    rest = "\n".join((view.__doc__ or "").strip().splitlines()[1:]).strip()
    allowed = "、".join(dict.fromkeys(ROLE_NAMES[r] for r in roles if r in ROLE_NAMES))
    doc.setdefault("manual_doc", {})["description"] = (rest + "\n\n" if rest else "") + f"需要角色：{allowed}。"
    doc["manual_doc"]["x-roles"] = list(dict.fromkeys(roles))


def require_role(*roles: str, kind: str = "console") -> Callable[[F], F]:
    """Like `login_required`, and the principal must hold one of `roles` (admin always may)."""

    def decorator(view: F) -> F:
        @login_required(kind)
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            found = current_principal()
            assert found is not None
            if not found.has_role(*roles):
                if wants_json():
                    raise Forbidden("您的角色无权进行此操作")
                abort(403)
            return view(*args, **kwargs)

        _document_roles(wrapped, ("admin", *roles))
        return wrapped  # type: ignore[return-value]

    return decorator


# ---------------------------------------------------------------- visibility


def scope_for(found: Principal) -> Scope:
    """Whose customers `found` may see (computed once per request for a manager)."""
    if found.role != "manager" or not found.userid or not has_request_context():
        return compute_scope(found)
    cached = request.environ.get(_SCOPE)
    if cached is not None and cached[0] == found.userid:
        scope: Scope = cached[1]
        return scope
    scope = compute_scope(found)
    request.environ[_SCOPE] = (found.userid, scope)
    return scope
