"""「联系我」 contact ways and group join ways (wecom-api.md §9.1)."""

from __future__ import annotations

import secrets
from typing import Any

from .base import ApiError, Ctx, clamp_limit, as_list, need_member, cursor_offset, paginate, text_len, contact


# ---------------------------------------------------------------- §9.1 contact ways


def _contact_way_fields(ctx: Ctx, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    way = dict(base)
    for key in ("type", "scene", "style", "remark", "skip_verify", "state", "user", "party", "is_temp",
                "expires_in", "chat_expires_in", "unionid", "is_exclusive", "mark_source", "conclusions"):
        if key in body:
            way[key] = body[key]
    if way.get("type") not in (1, 2):
        raise ApiError(40058, "type must be 1 or 2")
    if way.get("scene") not in (1, 2):
        raise ApiError(40058, "scene must be 1 or 2")
    if text_len(way.get("remark")) > 30 or text_len(way.get("state")) > 30:
        raise ApiError(40058, "remark and state are at most 30 characters")
    users = [str(u) for u in as_list(way.get("user"), "user")]
    parties = as_list(way.get("party"), "party")
    if way["type"] == 1 and (len(users) != 1 or parties):
        raise ApiError(40058, "type 1 needs exactly one user")
    if not users and not parties:
        raise ApiError(41009, "user and party are both empty")
    for userid in users:
        member = need_member(ctx, userid)
        if member.resigned:
            raise ApiError(41054)
    expanded = set(users) | {m.userid for m in ctx.state.staff.values()
                             if not m.resigned and set(m.department) & set(parties)}
    if len(expanded) > 100:
        raise ApiError(41041)
    if way.get("is_temp"):
        if way["type"] != 1:
            raise ApiError(40058, "temporary sessions are for a single member")
        if int(way.get("expires_in") or 0) > 14 * 86400 or int(way.get("chat_expires_in") or 0) > 14 * 86400:
            raise ApiError(40058, "expires_in and chat_expires_in are at most 14 days")
    way["user"], way["party"] = users, parties
    way.setdefault("skip_verify", True)
    return way


def _contact_way(ctx: Ctx) -> dict[str, Any]:
    config_id = ctx.body.get("config_id")
    if not config_id:
        raise ApiError(40058, "config_id is required")
    way = ctx.state.contact_ways.get(str(config_id))
    if way is None:
        raise ApiError(40058, f"invalid config_id: {config_id}")
    return way


@contact("add_contact_way")
def add_contact_way(ctx: Ctx) -> dict[str, Any]:
    if len(ctx.state.contact_ways) >= 500_000:
        raise ApiError(41045)
    way = _contact_way_fields(ctx, ctx.body, {})
    way["config_id"] = secrets.token_hex(16)
    way["create_time"] = ctx.now
    out = {"config_id": way["config_id"]}
    if way["scene"] == 2:
        way["qr_code"] = f"http://p.qpic.cn/wwhead/emu_{way['config_id'][:16]}/0"
        out["qr_code"] = way["qr_code"]
    ctx.state.contact_ways[way["config_id"]] = way
    return out


@contact("get_contact_way")
def get_contact_way(ctx: Ctx) -> dict[str, Any]:
    way = {k: v for k, v in _contact_way(ctx).items() if k != "create_time"}
    return {"contact_way": way}


@contact("update_contact_way")
def update_contact_way(ctx: Ctx) -> dict[str, Any]:
    way = _contact_way(ctx)
    body = {k: v for k, v in ctx.body.items() if k not in ("type", "scene", "config_id")}
    ctx.state.contact_ways[way["config_id"]] = _contact_way_fields(ctx, body, way)
    return {}


@contact("del_contact_way")
def del_contact_way(ctx: Ctx) -> dict[str, Any]:
    way = _contact_way(ctx)
    del ctx.state.contact_ways[way["config_id"]]
    return {}


@contact("list_contact_way")
def list_contact_way(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    end = int(body.get("end_time") or ctx.now)
    start = int(body.get("start_time") or end - 90 * 86400)
    rows = [{"config_id": w["config_id"]} for w in ctx.state.contact_ways.values()
            if start <= w["create_time"] <= end]
    page, cursor = paginate(rows, cursor_offset(ctx), clamp_limit(body.get("limit"), 100, 1000))
    return {"contact_way": page, "next_cursor": cursor}
