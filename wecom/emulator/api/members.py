"""Tokens, members and app messages (wecom-api.md §1, user/get, message/send)."""

from __future__ import annotations

from typing import Any

from .base import ApiError, Ctx, byte_len, need_member, route


# ---------------------------------------------------------------- tokens, members, app messages


@route("gettoken", "GET", auth=None)
def gettoken(ctx: Ctx) -> dict[str, Any]:
    corpid, secret = ctx.query.get("corpid"), ctx.query.get("corpsecret")
    if not corpid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    if corpid != ctx.state.corp_id:
        raise ApiError(40013)
    app = ctx.emu.app_for_secret(secret)
    if app is None:
        raise ApiError(40001)
    token, expires_at = ctx.emu.tokens.issue(app, ctx.now)
    return {"access_token": token, "expires_in": expires_at - ctx.now}


@route("getcallbackip", "GET")
def getcallbackip(ctx: Ctx) -> dict[str, Any]:
    return {"ip_list": ["127.0.0.1"]}


@route("user/get", "GET")
def user_get(ctx: Ctx) -> dict[str, Any]:
    member = need_member(ctx, ctx.query.get("userid"))
    return {"userid": member.userid, "name": member.name, "department": list(member.department),
            "position": member.position, "status": member.status}


@route("message/send")
def message_send(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    if ctx.app != "agent":
        raise ApiError(48002, "api forbidden: app messages need the app's access_token")
    if str(body.get("agentid", "")) != ctx.emu.agent_id:
        raise ApiError(40056)
    msgtype = body.get("msgtype")
    if msgtype == "text":
        content = (body.get("text") or {}).get("content")
        if not content or byte_len(content) > 2048:
            raise ApiError(40058, "text.content is empty or longer than 2048 bytes")
    elif msgtype == "textcard":
        card = body.get("textcard") or {}
        if not all(card.get(k) for k in ("title", "description", "url")):
            raise ApiError(40058, "textcard needs title, description and url")
    else:
        raise ApiError(40008)
    touser = str(body.get("touser") or "")
    if touser == "@all":
        targets = [u for u, m in ctx.state.staff.items() if not m.resigned]
        invalid: list[str] = []
    else:
        wanted = [u for u in touser.split("|") if u]
        targets = [u for u in wanted if u in ctx.state.staff and not ctx.state.staff[u].resigned]
        invalid = [u for u in wanted if u not in targets]
    if not targets:
        raise ApiError(81013)
    msgid = ctx.state.new_id("msg", 40)
    ctx.state.messages.append({"msgid": msgid, "touser": targets, "msgtype": msgtype,
                               msgtype: body.get(msgtype), "time": ctx.now})
    return {"invaliduser": "|".join(invalid), "msgid": msgid}
