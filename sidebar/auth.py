"""Staff sign-in through WeCom: OAuth inside the WeCom client, web login (QR code) in a desktop browser.

Both flows (wecom-api.md §8.4 and §13.1) go the same way:

1. `/auth/wecom/start?mode=oauth|qr&next=/path` makes a random `state`, keeps it in the session
   and redirects to WeCom (OAuth: `{WECOM_OAUTH_BASE}/connect/oauth2/authorize…#wechat_redirect`;
   QR: `{login base}/wwlogin/sso/login?login_type=CorpApp…`).
2. WeCom sends the browser back to `/auth/wecom/callback?code=…&state=…`. The state must equal the
   one in the session (single use); the code is exchanged with `auth/getuserinfo` on the agent
   app; only corp members (a `userid`, not an `openid`) who have not resigned are signed in.

The redirect URI is built from the host the browser used, so the session cookie comes back with
it; WeCom itself only accepts redirect URIs on the app's trusted domain.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from sqlalchemy import select

from core.db import db
from core.settings import settings
from crm.models import Staff
from identity.web import safe_next, sign_in
from wecom.client import WeComError, agent_client

log = logging.getLogger("scrm.sidebar.auth")

bp = Blueprint("auth", __name__, url_prefix="/auth")

DEFAULT_OAUTH_BASE = "https://open.weixin.qq.com"
DEFAULT_LOGIN_BASE = "https://login.work.weixin.qq.com"


def login_base() -> str:
    """The web-login (QR) host: WeCom's own, or the configured OAuth base when it is a proxy/emulator."""
    conf = settings()
    explicit = current_app.config.get("WECOM_LOGIN_BASE")
    if explicit:
        return str(explicit).rstrip("/")
    base = conf.WECOM_OAUTH_BASE.rstrip("/")
    return DEFAULT_LOGIN_BASE if base == DEFAULT_OAUTH_BASE else base


def authorize_url(mode: str, redirect_uri: str, state: str, as_userid: str | None = None) -> str:
    """The WeCom URL that starts sign-in (`mode` "oauth" inside the client, "qr" in a browser)."""
    conf = settings()
    if mode == "qr":
        query = {"login_type": "CorpApp", "appid": conf.WECOM_CORP_ID, "agentid": conf.WECOM_AGENT_ID,
                 "redirect_uri": redirect_uri, "state": state}
        if as_userid:
            query["userid"] = as_userid
        return f"{login_base()}/wwlogin/sso/login?{urlencode(query)}"
    query = {"appid": conf.WECOM_CORP_ID, "redirect_uri": redirect_uri, "response_type": "code",
             "scope": "snsapi_base", "state": state, "agentid": conf.WECOM_AGENT_ID}
    if as_userid:
        query["userid"] = as_userid
    return f"{conf.WECOM_OAUTH_BASE.rstrip('/')}/connect/oauth2/authorize?{urlencode(query)}#wechat_redirect"


@bp.get("/wecom/start")
def start() -> Any:
    mode = "qr" if request.args.get("mode") == "qr" else "oauth"
    default_next = "/console/" if mode == "qr" else "/sidebar/"
    state = secrets.token_hex(16)  # WeCom: state ≤128 bytes of [a-zA-Z0-9]
    session["oauth_state"] = state
    session["oauth_next"] = safe_next(request.args.get("next"), default_next)
    session["oauth_mode"] = mode
    # The emulator's sign-in page takes the staff member to act as; never passed on to real WeCom.
    as_userid = request.args.get("as") if settings().SCRM_DEMO else None
    redirect_uri = url_for("auth.callback", _external=True)
    return redirect(authorize_url(mode, redirect_uri, state, as_userid))


def _refuse(status: int, title: str, message: str) -> Any:
    mode = session.get("oauth_mode", "oauth")
    retry = url_for("auth.start", mode=mode, next=session.get("oauth_next", "/sidebar/"))
    template = "sidebar/message.html" if mode == "oauth" else "error.html"
    return render_template(template, code=status, title=title, message=message, retry_url=retry), status


@bp.get("/wecom/callback")
def callback() -> Any:
    expected = session.pop("oauth_state", None)
    given = request.args.get("state", "")
    if not expected or not hmac.compare_digest(str(expected), given):
        log.warning("sidebar.auth.bad-state has_session_state=%s", bool(expected))
        return _refuse(400, "登录已失效", "登录请求已过期或不是从本站发起的，请重新登录。")
    code = request.args.get("code")
    if not code:
        return _refuse(401, "未完成登录", "您取消了企业微信登录。")
    try:
        info = agent_client().get_user_info(code)
    except WeComError as exc:
        log.warning("sidebar.auth.exchange-failed errcode=%s", exc.errcode)
        if exc.transient:
            return _refuse(503, "企业微信暂时无法访问", "暂时无法向企业微信确认您的身份，请稍后重试。")
        return _refuse(401, "登录码无效", "登录码已失效（有效期 5 分钟且只能使用一次），请重新登录。")
    userid = info.get("userid")
    if not userid:
        log.info("sidebar.auth.not-member")
        return _refuse(403, "仅限企业成员", "只有本企业的成员可以使用，请用企业微信账号登录。")
    corp_id = settings().WECOM_CORP_ID
    staff = db.session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.userid == userid))
    if staff is not None and staff.status == "resigned":
        log.info("sidebar.auth.resigned userid=%s", userid)
        return _refuse(403, "账号已停用", "该成员已离职，无法登录。")
    next_path = session.get("oauth_next", "/sidebar/")
    demo = session.get("demo_context")
    sign_in(userid)
    if demo and settings().SCRM_DEMO:
        session["demo_context"] = demo
    log.info("sidebar.auth.signed-in userid=%s", userid)
    return redirect(next_path)
