"""JS-SDK tickets and OAuth sign-in (wecom-api.md §8)."""

from __future__ import annotations

from typing import Any

from .base import ApiError, Ctx, route


# ---------------------------------------------------------------- §8 tickets and OAuth


def _ticket(ctx: Ctx, kind: str) -> dict[str, Any]:
    ticket, expires_at = ctx.emu.tokens.ticket(kind, ctx.now)
    return {"ticket": ticket, "expires_in": expires_at - ctx.now}


@route("get_jsapi_ticket", "GET")
def get_jsapi_ticket(ctx: Ctx) -> dict[str, Any]:
    return _ticket(ctx, "corp")


@route("ticket/get", "GET")
def ticket_get(ctx: Ctx) -> dict[str, Any]:
    if ctx.query.get("type") != "agent_config":
        raise ApiError(40058, "type must be agent_config")
    if ctx.app != "agent":
        raise ApiError(42012)
    return _ticket(ctx, "agent")


@route("auth/getuserinfo", "GET")
def auth_getuserinfo(ctx: Ctx) -> dict[str, Any]:
    code = ctx.query.get("code")
    if not code:
        raise ApiError(41008)
    entry = ctx.state.oauth_codes.pop(code, None)
    if entry is None or ctx.now > entry[1]:
        raise ApiError(40029)
    return {"userid": entry[0]}
