"""Handover of a departing or moving member's customers and group chats (wecom-api.md §5)."""

from __future__ import annotations

from typing import Any

from ..state import CUSTOMER_DELETED, MEMBER_RESIGNED, TRANSFER_WINDOW, VISIBLE, ChatMember
from .base import ERRMSG, ApiError, Ctx, clamp_limit, as_list, need_member, cursor_offset, paginate, text_len, contact


# ---------------------------------------------------------------- §5 handover


def _transfer(ctx: Ctx, kind: str) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    handover = need_member(ctx, body.get("handover_userid"))
    takeover = need_member(ctx, body.get("takeover_userid"))
    if handover.userid == takeover.userid:
        raise ApiError(40130)
    if takeover.resigned:
        raise ApiError(41054, "takeover member is not active")
    if kind == "resigned" and not handover.resigned:
        raise ApiError(40097)
    ext_ids = as_list(body.get("external_userid"), "external_userid")
    if not ext_ids:
        raise ApiError(41035)
    if len(ext_ids) > 100:
        raise ApiError(40058, "external_userid exceeds 100")
    if kind == "onjob" and text_len(body.get("transfer_success_msg")) > 200:
        raise ApiError(40058, "transfer_success_msg longer than 200 characters")
    window_start = ctx.now - TRANSFER_WINDOW
    results = []
    for ext in ext_ids:
        code = 0
        rel = st.relation(handover.userid, str(ext)) if ext in st.customers else None
        if ext not in st.customers:
            code = 40096
        elif rel is None or rel.status not in VISIBLE:
            code = 40131
        elif ext in st.pending_by_customer:
            code = 40129
        elif kind == "onjob" and rel.status == CUSTOMER_DELETED:
            code = 84061
        elif kind == "onjob" and st.onjob_transfers_since(ext, window_start) >= 2:
            code = 40128
        if code == 0:
            st.start_transfer(kind, handover.userid, takeover.userid, ext)
        results.append({"external_userid": ext, "errcode": code})
    return {"customer": results}


def _transfer_result(ctx: Ctx, kind: str) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    handover = need_member(ctx, body.get("handover_userid"))
    takeover = need_member(ctx, body.get("takeover_userid"))
    latest: dict[str, Any] = {}
    for t in st.transfers:
        if t.kind == kind and t.handover == handover.userid and t.takeover == takeover.userid:
            latest[t.external_userid] = t
    rows = [{"external_userid": t.external_userid, "status": t.status, "takeover_time": t.takeover_time}
            for t in latest.values()]
    page, cursor = paginate(rows, cursor_offset(ctx), 1000)
    return {"customer": page, "next_cursor": cursor}


@contact("transfer_customer")
def transfer_customer(ctx: Ctx) -> dict[str, Any]:
    return _transfer(ctx, "onjob")


@contact("resigned/transfer_customer")
def resigned_transfer_customer(ctx: Ctx) -> dict[str, Any]:
    return _transfer(ctx, "resigned")


@contact("transfer_result")
def transfer_result(ctx: Ctx) -> dict[str, Any]:
    return _transfer_result(ctx, "onjob")


@contact("resigned/transfer_result")
def resigned_transfer_result(ctx: Ctx) -> dict[str, Any]:
    return _transfer_result(ctx, "resigned")


@contact("get_unassigned_list")
def get_unassigned_list(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    size = clamp_limit(body.get("page_size"), 1000, 1000)
    rows = []
    resigned = sorted((m for m in st.staff.values() if m.status == MEMBER_RESIGNED),
                      key=lambda m: (-m.dimission_time, m.userid))
    for member in resigned:
        for rel in st.by_user.get(member.userid, []):
            if rel.status in VISIBLE and rel.external_userid not in st.pending_by_customer:
                rows.append({"handover_userid": member.userid, "external_userid": rel.external_userid,
                             "dimission_time": member.dimission_time})
    if "page_id" in body and not body.get("cursor"):
        start = clamp_limit(body.get("page_id"), 0, 10**9) * size if body.get("page_id") else 0
        page = rows[start:start + size]
        return {"info": page, "is_last": start + size >= len(rows)}
    page, cursor = paginate(rows, cursor_offset(ctx), size)
    return {"info": page, "is_last": not cursor, "next_cursor": cursor}


def _chat_transfer(ctx: Ctx, onjob: bool) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    chat_ids = as_list(body.get("chat_id_list"), "chat_id_list")
    if not 1 <= len(chat_ids) <= 100:
        raise ApiError(40058, "chat_id_list must hold 1 to 100 chat ids")
    new_owner = need_member(ctx, body.get("new_owner"))
    if new_owner.resigned:
        raise ApiError(41054, "new_owner is not active")
    failed = []
    day = (ctx.now + 8 * 3600) // 86400
    for chat_id in chat_ids:
        chat = st.group_chats.get(str(chat_id))
        code = 0
        owner = st.staff.get(chat.owner) if chat else None
        if chat is None:
            code = 90501
        elif chat.dismissed:
            code = 49008
        elif chat.owner == new_owner.userid:
            code = 90504
        elif onjob and owner is not None and owner.resigned:
            code = 90502
        elif onjob and sum(1 for s in chat.transfers if s >= ctx.now - TRANSFER_WINDOW) >= 2:
            code = 40128
        elif not onjob and (owner is None or not owner.resigned):
            code = 90508 if chat.status == 3 else 90500
        elif not onjob and ctx.emu.chat_transfers_today.get((chat.owner, day), 0) >= 300:
            code = 45009
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": ERRMSG.get(code, _CHAT_ERR.get(code, ""))})
            continue
        if not onjob:
            ctx.emu.chat_transfers_today[(chat.owner, day)] = ctx.emu.chat_transfers_today.get((chat.owner, day), 0) + 1
        else:
            chat.transfers.append(ctx.now)
        chat.owner = new_owner.userid
        chat.status = 3 if not onjob else 0
        if new_owner.userid not in chat.member_ids():
            chat.members.append(ChatMember(new_owner.userid, 1, ctx.now, 1, None, new_owner.name))
            st.bump_member_version(chat)
    return {"failed_chat_list": failed}


_CHAT_ERR = {90500: "the owner of this chat is not resigned", 90501: "chat is not external group chat",
             90502: "the owner of this chat is resigned", 90504: "the new owner is the same as the old owner",
             90508: "the chat has been transferred"}


@contact("groupchat/transfer")
def groupchat_transfer(ctx: Ctx) -> dict[str, Any]:
    return _chat_transfer(ctx, onjob=False)


@contact("groupchat/onjob_transfer")
def groupchat_onjob_transfer(ctx: Ctx) -> dict[str, Any]:
    return _chat_transfer(ctx, onjob=True)
