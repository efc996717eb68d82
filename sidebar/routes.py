"""The chat-sidebar pages (聊天工具栏) and the JS-SDK signature endpoint.

    /sidebar/                         entry: registers the JS-SDK, asks WeCom which chat this is, then
                                      opens the customer or group-chat page
    /sidebar/customer/<external_id>   the customer's profile, tags, colleagues, chats and follow-ups
    /sidebar/chat/<chat_id>           a customer group chat and its members
    /sidebar/jssdk/signature          {"timestamp", "nonceStr", "signature"} for ww.register (in `api.py`)
    /sidebar/demo                     demo only (SCRM_DEMO): sign in as a staff member on a customer
                                      in an ordinary browser, with a JS-SDK stand-in
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for

from identity.web import login_required, principal
from core.settings import settings
from tagging.catalog.service import tag_catalog

from . import service
from .service import CustomerNotFound, WeComUnavailable

log = logging.getLogger("scrm.sidebar")

bp = Blueprint("sidebar", __name__, url_prefix="/sidebar", template_folder="templates",
               static_folder="static", static_url_path="/static")

STANDIN = Path(__file__).parent / "demo" / "ww-standin.js"


@bp.errorhandler(CustomerNotFound)
def _not_found(exc: CustomerNotFound) -> Any:
    return render_template("sidebar/message.html", title="找不到该客户",
                           message="该客户不存在，或不是您（及您的团队）跟进的客户。"), 404


@bp.errorhandler(WeComUnavailable)
def _wecom_down(exc: WeComUnavailable) -> Any:
    return render_template("sidebar/message.html", title="企业微信暂时无法访问",
                           message="这位客户的资料还没有同步过来，而企业微信暂时无法访问。请稍后下拉刷新重试。",
                           retry_url=request.full_path), 503


def _page_config() -> dict[str, Any]:
    conf = settings()
    demo = session.get("demo_context") if conf.SCRM_DEMO else None
    return {"corpId": conf.WECOM_CORP_ID, "agentId": conf.WECOM_AGENT_ID,
            "signatureUrl": url_for("jssdk_api.signature"), "customerUrl": url_for("sidebar.customer", external_userid="_"),
            "chatUrl": url_for("sidebar.chat", chat_id="_"), "demo": demo}


@bp.get("/")
@login_required("sidebar")
def entry() -> Any:
    """The page WeCom opens from the chat toolbar; the script finds the chat and moves on."""
    config = _page_config()
    return render_template("sidebar/entry.html", config=config, sdk_url=_sdk_url(config))


def _sdk_url(config: dict[str, Any]) -> str:
    """WeCom's JS-SDK (vendored), or its demo stand-in when the demo plays WeCom."""
    if config["demo"]:
        return url_for("sidebar.standin")
    return url_for("sidebar.static", filename="vendor/wecom-jssdk/wecom.global.prod.js")


@bp.get("/customer/<external_userid>")
@login_required("sidebar")
def customer(external_userid: str) -> Any:
    p = principal()
    found = service.load_customer(p, external_userid)
    profile = service.profile(p, found)
    mine = next((f for f in profile["follow_users"] if f["is_me"] and f["status"] == "active"), None)
    colleagues = [f for f in profile["follow_users"] if not f["is_me"]]
    catalog = tag_catalog(p.corp_id) if mine is not None else []
    config = _page_config()
    return render_template("sidebar/customer.html", c=profile, mine=mine, colleagues=colleagues, catalog=catalog,
                           my_tag_ids={t["tag_id"] for t in mine["tags"]} if mine else set(),
                           all_tags=_union_tags(profile), config=config, sdk_url=_sdk_url(config))


def _union_tags(profile: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Every tag any follow user marked, grouped by tag group (read-only view for non-followers)."""
    groups: dict[str, list[str]] = {}
    for f in profile["follow_users"]:
        for t in f["tags"]:
            names = groups.setdefault(t["group_name"], [])
            if t["name"] not in names:
                names.append(t["name"])
    return list(groups.items())


@bp.get("/chat/<chat_id>")
@login_required("sidebar")
def chat(chat_id: str) -> Any:
    view = service.load_chat(principal(), chat_id)
    return render_template("sidebar/chat.html", chat=view.chat, members=view.members,
                           customers=sum(1 for m in view.members if m["is_customer"]))


# ---------------------------------------------------------------- demo outside WeCom (emulator only)


@bp.get("/demo")
def demo() -> Any:
    """`?userid=U&external_userid=E` (or `&chat_id=C`): sign in through the emulator as U, open E's sidebar.

    Without E or C, the customer U added most recently is opened.
    """
    if not settings().SCRM_DEMO:
        abort(404)
    userid = request.args.get("userid", "")
    context: dict[str, str] = {}
    if request.args.get("chat_id"):
        context = {"entry": "group_chat_tools", "chatId": request.args["chat_id"]}
    elif request.args.get("external_userid"):
        context = {"entry": "single_chat_tools", "userId": request.args["external_userid"]}
    elif userid:
        latest = service.latest_customer(settings().WECOM_CORP_ID, userid)
        if latest:
            context = {"entry": "single_chat_tools", "userId": latest}
    if not userid or not context:
        abort(400)
    session["demo_context"] = context
    target: dict[str, Any] = {"mode": "oauth", "next": url_for("sidebar.entry"), "as": userid}
    return redirect(url_for("auth.start", **target))


@bp.get("/demo/ww-standin.js")
def standin() -> Any:
    """A stand-in for WeCom's JS-SDK for the demo in a browser; never served outside demo mode."""
    if not settings().SCRM_DEMO:
        abort(404)
    return Response(STANDIN.read_bytes(), mimetype="text/javascript", headers={"Cache-Control": "no-store"})
