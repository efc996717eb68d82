"""The customer API the sidebar page calls (and other systems, with a token), and the JS-SDK signature.

    GET  /api/v1/customers?q=&tag=&stage=&userid=&cursor=&limit=   list, newest first, keyset-paginated
    GET  /api/v1/customers/{external_userid}            profile (with tier, stage duration, 30-day summary)
    GET  /api/v1/customers/{external_userid}/timeline   follow-ups and behaviour events, newest first, paged
    POST /api/v1/customers/{external_userid}/tags       {"userid"?, "add": [...], "remove": [...]} → 202
    POST /api/v1/customers/{external_userid}/followups  {"content", "next_at"?, "userid"?} → 201
    PUT  /api/v1/customers/{external_userid}/stage      {"stage"} → 200
    GET  /sidebar/jssdk/signature?kind=config|agent&url=  the signature ww.register asks for

Authenticated by the sidebar session (writes need the `X-CSRF-Token` header) or a bearer token.
A customer the caller may not see answers 404, exactly like a missing one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from flask import request

from core.api import ApiBlueprint
from core.errors import Unavailable, UserValueError
from core.settings import settings
from identity.web import login_required, principal
from tagging.assignments.service import change_relation_tags
from wecom import jssdk
from wecom.client import WeComError, agent_client, contact_client

from . import service
from .schemas import (CustomerListOut, CustomerListQuery, CustomerStageIn, CustomerStageOut, FollowupIn, FollowupOut,
                      ProfileOut, SignatureOut, SignatureQuery, TagChangeIn, TagChangeOut, TimelineOut, TimelineQuery)

log = logging.getLogger("scrm.sidebar.api")

bp = ApiBlueprint("customers_api", __name__, url_prefix="/api/v1", description="客户：列表、资料、标签、跟进与阶段")
jssdk_bp = ApiBlueprint("jssdk_api", __name__, url_prefix="/sidebar", description="侧边栏：JS-SDK 签名")


@bp.get("/customers")
@login_required("sidebar")
@bp.arguments(CustomerListQuery, location="query")
@bp.response(200, CustomerListOut)
def list_customers(query: dict[str, Any]) -> dict[str, Any]:
    """The customers the caller may see, newest first: `tag` (all must match), `stage` and `userid` (any),
    `q` a part of the name, corp name or remark. 422 for an unknown or deleted tag or stage."""
    return service.list_customers(principal(), q=query["q"], tags=[t.strip() for t in query["tag"] if t.strip()],
                                  stages=[s.strip() for s in query["stage"] if s.strip()],
                                  userids=[u.strip() for u in query["userid"] if u.strip()],
                                  cursor=query["cursor"], limit=service.parse_limit(query["limit"]))


@bp.get("/customers/<external_userid>")
@login_required("sidebar")
@bp.response(200, ProfileOut)
def get_customer(external_userid: str) -> dict[str, Any]:
    """The profile: follow users with their tags, follow-ups (newest first), group chats."""
    p = principal()
    return service.profile(p, service.load_customer(p, external_userid))


@bp.get("/customers/<external_userid>/timeline")
@login_required("sidebar")
@bp.arguments(TimelineQuery, location="query")
@bp.response(200, TimelineOut)
def get_timeline(query: dict[str, Any], external_userid: str) -> dict[str, Any]:
    """Follow-ups and behaviour events (page views, link opens, forms, orders) merged, newest first."""
    p = principal()
    customer = service.load_customer(p, external_userid, fetch=False)
    return service.timeline(customer, query["cursor"], query["limit"])


@bp.post("/customers/<external_userid>/tags")
@login_required("sidebar")
@bp.arguments(TagChangeIn)
@bp.response(202, TagChangeOut)
def change_tags(data: dict[str, Any], external_userid: str) -> dict[str, Any]:
    """Add and remove corp tags on one follow relation: applied here at once, sent to WeCom after."""
    p = principal()
    customer = service.load_customer(p, external_userid)
    relation = service.editable_relation(p, customer, data.get("userid"))
    command = change_relation_tags(p.corp_id, relation, data["add"], data["remove"], actor=p.actor,
                                   source="api" if p.via == "token" else "staff")
    body = service.profile(p, customer)
    mine = next(f for f in body["follow_users"] if f["userid"] == relation.userid)
    sync = {"status": "unchanged", "command_id": None, "message": "标签没有变化"} if command is None else (
        mine["tag_sync"] or {"status": "pending", "command_id": command.id, "message": "正在同步到企业微信…"})
    return {"userid": relation.userid, "tags": mine["tags"], "sync": sync}


@bp.post("/customers/<external_userid>/followups")
@login_required("sidebar")
@bp.arguments(FollowupIn)
@bp.response(201, FollowupOut)
def add_followup(data: dict[str, Any], external_userid: str) -> dict[str, Any]:
    """Write a follow-up note (by the signed-in staff member, or `userid` for a token)."""
    p = principal()
    customer = service.load_customer(p, external_userid)
    row = service.add_followup(p, customer, data["content"], data.get("next_at"), data.get("userid"))
    return service.followup_dict(row, {p.userid or "": p.name})


@bp.put("/customers/<external_userid>/stage")
@login_required("sidebar")
@bp.arguments(CustomerStageIn)
@bp.response(200, CustomerStageOut)
def set_stage(data: dict[str, Any], external_userid: str) -> dict[str, Any]:
    """Move the customer to one of the corp's stages (null clears it)."""
    p = principal()
    customer = service.load_customer(p, external_userid)
    service.set_stage(p, customer, data["stage"])
    return {"external_userid": external_userid, "stage": customer.stage}


@jssdk_bp.get("/jssdk/signature")
@login_required("sidebar")
@jssdk_bp.arguments(SignatureQuery, location="query")
@jssdk_bp.response(200, SignatureOut)
def signature(query: dict[str, Any]) -> dict[str, Any]:
    """The signature `ww.register` asks for, for a page of this server only (its fragment stripped)."""
    url = jssdk.strip_fragment(query["url"])
    if not _own_page(url):
        raise UserValueError("只能为本站的侧边栏页面签名", field="url")
    try:
        ticket = contact_client().get_jsapi_ticket() if query["kind"] == "config" else agent_client().get_agent_ticket()
    except WeComError as exc:
        log.warning("sidebar.jssdk.ticket-failed kind=%s errcode=%s", query["kind"], exc.errcode)
        raise Unavailable("暂时无法从企业微信获取签名，请稍后重试") from exc
    return jssdk.signature_for(ticket, url).as_dict()


def _own_page(url: str) -> bool:
    """Only pages of this server are signed: the host the browser used, or the public URL's."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    allowed = {request.host, urlparse(settings().SCRM_PUBLIC_URL).netloc}
    return parsed.netloc in allowed and parsed.path.startswith("/sidebar/")
