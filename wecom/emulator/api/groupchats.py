"""Customer group chats (wecom-api.md §6)."""

from __future__ import annotations

from typing import Any

from .base import ApiError, Ctx, as_list, cursor_offset, paginate, contact


# ---------------------------------------------------------------- §6 group chats


@contact("groupchat/list")
def groupchat_list(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    if body.get("limit") in (None, ""):
        raise ApiError(40058, "limit is required")
    try:
        limit = int(body["limit"])
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid limit") from None
    if not 1 <= limit <= 1000:
        raise ApiError(40058, "limit must be between 1 and 1000")
    status_filter = body.get("status_filter") or 0
    if status_filter not in (0, 1, 2, 3):
        raise ApiError(40058, "invalid status_filter")
    owner_filter = body.get("owner_filter") or {}
    owners = as_list(owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None, "userid_list")
    if len(owners) > 100:
        raise ApiError(40058, "owner_filter.userid_list exceeds 100")
    if not owners and len(st.staff) > 1000:
        raise ApiError(81017)
    chats = [c for c in st.group_chats.values() if not c.dismissed
             and (not owners or c.owner in owners) and (not status_filter or c.status == status_filter)]
    page, cursor = paginate(chats, cursor_offset(ctx), limit)
    return {"group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in page], "next_cursor": cursor}


@contact("groupchat/get")
def groupchat_get(ctx: Ctx) -> dict[str, Any]:
    st = ctx.state
    chat_id = ctx.body.get("chat_id")
    if not chat_id:
        raise ApiError(40058, "chat_id is required")
    chat = st.group_chats.get(str(chat_id))
    if chat is None:
        raise ApiError(40050)
    if chat.dismissed:
        raise ApiError(49008)
    need_name = bool(ctx.body.get("need_name"))
    members = []
    for m in chat.members:
        item: dict[str, Any] = {"userid": m.userid, "type": m.type, "join_time": m.join_time, "join_scene": m.join_scene}
        if m.type == 2:
            customer = st.customers.get(m.userid)
            if customer is not None and customer.unionid:
                item["unionid"] = customer.unionid
        if m.state:
            item["state"] = m.state
        if m.invitor:
            item["invitor"] = {"userid": m.invitor}
        item["group_nickname"] = m.group_nickname
        if need_name:
            item["name"] = m.name
        members.append(item)
    return {"group_chat": {"chat_id": chat.chat_id, "name": chat.name, "owner": chat.owner,
                           "create_time": chat.create_time, "notice": chat.notice, "member_list": members,
                           "admin_list": [{"userid": a} for a in chat.admin_list],
                           "member_version": chat.member_version}}
