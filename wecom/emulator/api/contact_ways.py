"""「联系我」 contact ways and group join ways (wecom-api.md §9.1)."""

from __future__ import annotations

import secrets
from typing import Any

from .base import ApiError, Ctx, clamp_limit, as_list, need_member, cursor_offset, paginate, text_len, contact


# ---------------------------------------------------------------- §9.1 contact ways


def qr_url(ctx: Ctx, config_id: str) -> str:
    """Where the way's QR code image is: WeCom's CDN in real life; here the emulator draws it itself
    (/emulator/qr/<config_id>.png) at the address the caller reached it on."""
    host = ctx.request.host_url.rstrip("/") if ctx.request is not None else "http://127.0.0.1"
    return f"{host}/emulator/qr/{config_id}.png"


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
        way["qr_code"] = qr_url(ctx, way["config_id"])
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


# ---------------------------------------------------------------- §9.1 group-chat join ways


def _join_way_fields(ctx: Ctx, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    way = dict(base)
    for key in ("scene", "remark", "auto_create_room", "room_base_name", "room_base_id", "chat_id_list", "state"):
        if key in body:
            way[key] = body[key]
    if way.get("scene") not in (1, 2):
        raise ApiError(40058, "scene must be 1 or 2")
    if text_len(way.get("remark")) > 30 or text_len(way.get("state")) > 30:
        raise ApiError(40058, "remark and state are at most 30 characters")
    chats = [str(c) for c in as_list(way.get("chat_id_list"), "chat_id_list")]
    if not chats:
        raise ApiError(40058, "chat_id_list is required")
    if len(chats) > 5:
        raise ApiError(41091)
    for chat_id in chats:
        chat = ctx.state.group_chats.get(chat_id)
        if chat is None or chat.dismissed:
            raise ApiError(40050, f"chatid not found: {chat_id}")
    auto = int(way.get("auto_create_room") or 0)
    if auto not in (0, 1):
        raise ApiError(40058, "auto_create_room must be 0 or 1")
    if auto and (not way.get("room_base_name") or text_len(way.get("room_base_name")) > 40):
        raise ApiError(40058, "room_base_name is required (at most 40 characters) when auto_create_room is 1")
    way["chat_id_list"], way["auto_create_room"] = chats, auto
    return way


def _join_way(ctx: Ctx) -> dict[str, Any]:
    config_id = ctx.body.get("config_id")
    if not config_id:
        raise ApiError(40058, "config_id is required")
    way = ctx.state.join_ways.get(str(config_id))
    if way is None:
        raise ApiError(40058, f"invalid config_id: {config_id}")
    return way


@contact("groupchat/add_join_way")
def add_join_way(ctx: Ctx) -> dict[str, Any]:
    if len(ctx.state.contact_ways) + len(ctx.state.join_ways) >= 500_000:
        raise ApiError(41045)
    way = _join_way_fields(ctx, ctx.body, {})
    way["config_id"] = secrets.token_hex(16)
    if way["scene"] == 2:
        way["qr_code"] = qr_url(ctx, way["config_id"])
    ctx.state.join_ways[way["config_id"]] = way
    return {"config_id": way["config_id"]}  # the QR code comes from get_join_way


@contact("groupchat/get_join_way")
def get_join_way(ctx: Ctx) -> dict[str, Any]:
    return {"join_way": dict(_join_way(ctx))}


@contact("groupchat/update_join_way")
def update_join_way(ctx: Ctx) -> dict[str, Any]:
    way = _join_way(ctx)
    if "scene" not in ctx.body or "chat_id_list" not in ctx.body:
        raise ApiError(40058, "scene and chat_id_list are required")
    body = {k: v for k, v in ctx.body.items() if k != "config_id"}
    ctx.state.join_ways[way["config_id"]] = _join_way_fields(ctx, body, way)
    return {}


@contact("groupchat/del_join_way")
def del_join_way(ctx: Ctx) -> dict[str, Any]:
    way = _join_way(ctx)
    del ctx.state.join_ways[way["config_id"]]
    return {}
