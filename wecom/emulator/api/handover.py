"""Handover of a departing or moving member's customers and group chats (wecom-api.md §5).

- `transfer_customer` / `resigned/transfer_customer`: ≤100 customers a call, a result per customer (0 =
  started; the takeover happens 24 h later on the emulator clock, see `State.tick`);
- `transfer_result` / `resigned/transfer_result`: the latest record of each customer for a (handover,
  takeover) pair, pages of ≤1000 with a cursor;
- `get_unassigned_list`: the customers of resigned members still waiting for a takeover, by cursor (a
  keyset: stable while transfers start between pages) or the legacy `page_id` (which stops at 50,000 rows);
- `groupchat/transfer` / `groupchat/onjob_transfer`: ≤100 chats a call, a `failed_chat_list` entry per chat
  that could not move (the new owner unable to own it, the chat full, 2 on-job transfers in 90 days, 300
  chats a day from one owner, …).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

from ..state import CUSTOMER_DELETED, MEMBER_RESIGNED, TRANSFER_WINDOW, VISIBLE, ChatMember, State
from .base import (ERRMSG, ApiError, Ctx, as_list, clamp_limit, contact, cursor_offset, dec_cursor, enc_cursor,
                   need_member, paginate, text_len)

PER_CALL = 100
RESULT_PAGE = 1000
LEGACY_ROWS = 50_000  # page_id × page_size beyond this reaches nothing (wecom-api.md §5.4)
CHAT_MEMBER_LIMIT = 500
CHATS_PER_DAY = 300  # chats that may be handed over from one owner per (China) day
NO_PERMISSION = 84074


# ---------------------------------------------------------------- §5.1 / §5.3 customers


def _customer_code(st: State, kind: str, handover: str, ext: Any, recent: Counter[str]) -> int:
    """The per-customer errcode of a transfer request (0 = the transfer starts)."""
    if not isinstance(ext, str) or ext not in st.customers:
        return 40096
    rel = st.relation(handover, ext)
    if rel is None or rel.status not in VISIBLE:
        return 40131
    if ext in st.pending_by_customer:
        return 40129
    if kind == "onjob" and rel.status == CUSTOMER_DELETED:
        return 84061
    if kind == "onjob" and recent[ext] >= 2:
        return 40128
    return 0


def _transfer(ctx: Ctx, kind: str) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    handover = need_member(ctx, body.get("handover_userid"))
    takeover = need_member(ctx, body.get("takeover_userid"))
    if handover.userid == takeover.userid:
        raise ApiError(40130)
    if takeover.resigned:
        raise ApiError(41054, "takeover member is not active")
    if not takeover.customer_contact:
        raise ApiError(NO_PERMISSION, "takeover member has no external contact permission")
    if kind == "resigned" and not handover.resigned:
        raise ApiError(40097)
    ext_ids = as_list(body.get("external_userid"), "external_userid")
    if not ext_ids:
        raise ApiError(41035)
    if len(ext_ids) > PER_CALL:
        raise ApiError(40058, "external_userid exceeds 100")
    if kind == "onjob" and text_len(body.get("transfer_success_msg")) > 200:
        raise ApiError(40058, "transfer_success_msg longer than 200 characters")
    window_start = ctx.now - TRANSFER_WINDOW
    wanted = {e for e in ext_ids if isinstance(e, str)}
    recent = Counter(t.external_userid for t in st.transfers
                     if t.kind == "onjob" and t.start >= window_start and t.external_userid in wanted)
    results = []
    for ext in ext_ids:
        code = _customer_code(st, kind, handover.userid, ext, recent)
        if code == 0:
            st.start_transfer(kind, handover.userid, takeover.userid, ext)
            recent[ext] += 1 if kind == "onjob" else 0
        results.append({"external_userid": ext, "errcode": code})
    return {"customer": results}


def _transfer_result(ctx: Ctx, kind: str) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    handover = need_member(ctx, body.get("handover_userid"))
    takeover = need_member(ctx, body.get("takeover_userid"))
    latest: dict[str, Any] = {}
    for t in st.transfers:
        if t.kind == kind and t.handover == handover.userid and t.takeover == takeover.userid:
            latest.pop(t.external_userid, None)  # a customer's latest record, listed where it was started
            latest[t.external_userid] = t
    rows = [t.result() for t in latest.values()]
    page, cursor = paginate(rows, cursor_offset(ctx), RESULT_PAGE)
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


# ---------------------------------------------------------------- §5.4 unassigned customers


def _unassigned(st: State) -> Iterator[tuple[tuple[int, int, int], dict[str, Any]]]:
    """(position key, row) of every customer of a resigned member not being handed over, newest
    resignation first. The key — (−dimission_time, the member's place in the address book, the relation's
    place in the member's append-only list) — does not move when other rows come or go."""
    ordinal = {userid: i for i, userid in enumerate(st.staff)}
    resigned = sorted((m for m in st.staff.values() if m.status == MEMBER_RESIGNED),
                      key=lambda m: (-m.dimission_time, ordinal[m.userid]))
    for member in resigned:
        for pos, rel in enumerate(st.by_user.get(member.userid, [])):
            if rel.status in VISIBLE and rel.external_userid not in st.pending_by_customer:
                yield ((-member.dimission_time, ordinal[member.userid], pos),
                       {"handover_userid": member.userid, "external_userid": rel.external_userid,
                        "dimission_time": member.dimission_time})


@contact("get_unassigned_list")
def get_unassigned_list(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    size = clamp_limit(body.get("page_size"), 1000, 1000)
    if "page_id" in body and not body.get("cursor"):
        start = clamp_limit(body.get("page_id"), 0, 10**9) * size if body.get("page_id") else 0
        rows = [row for _, row in _unassigned(st)][:LEGACY_ROWS]
        return {"info": rows[start:start + size], "is_last": start + size >= len(rows)}
    after = dec_cursor(body.get("cursor"), 3)
    page: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    more = False
    for key, row in _unassigned(st):
        if after is not None and key <= tuple(after):
            continue
        if len(page) == size:
            more = True
            break
        page.append((key, row))
    cursor = enc_cursor(*page[-1][0]) if more else ""
    return {"info": [row for _, row in page], "is_last": not more, "next_cursor": cursor}


# ---------------------------------------------------------------- §5.5 group chats


_CHAT_ERR = {90500: "the owner of this chat is not resigned", 90501: "chat is not external group chat",
             90502: "the owner of this chat is resigned", 90503: "the chat is full",
             90504: "the new owner is the same as the old owner", 90507: "the chat is being transferred",
             90508: "the chat has been transferred", NO_PERMISSION: "new owner has no external contact permission"}


def _chat_code(ctx: Ctx, chat: Any, new_owner: Any, onjob: bool, day: int) -> int:
    """Why one chat cannot move to `new_owner` (0: it can)."""
    st = ctx.state
    owner = st.staff.get(chat.owner) if chat is not None else None
    if chat is None:
        return 90501
    if chat.dismissed:
        return 49008
    if chat.owner == new_owner.userid:
        return 90504
    if new_owner.resigned:
        return 41054
    if not new_owner.customer_contact:
        return NO_PERMISSION
    if onjob and owner is not None and owner.resigned:
        return 90502
    if not onjob and chat.status in (2, 3):
        return 90507 if chat.status == 2 else 90508
    if not onjob and (owner is None or not owner.resigned):
        return 90500
    if onjob and sum(1 for s in chat.transfers if s >= ctx.now - TRANSFER_WINDOW) >= 2:
        return 40128
    if new_owner.userid not in chat.member_ids() and len(chat.members) >= CHAT_MEMBER_LIMIT:
        return 90503
    if ctx.emu.chat_transfers_today.get((chat.owner, day), 0) >= CHATS_PER_DAY:
        return 45009
    return 0


def _chat_transfer(ctx: Ctx, onjob: bool) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    chat_ids = as_list(body.get("chat_id_list"), "chat_id_list")
    if not 1 <= len(chat_ids) <= PER_CALL:
        raise ApiError(40058, "chat_id_list must hold 1 to 100 chat ids")
    new_owner = need_member(ctx, body.get("new_owner"))
    failed = []
    day = (ctx.now + 8 * 3600) // 86400
    for chat_id in chat_ids:
        chat = st.group_chats.get(str(chat_id))
        code = _chat_code(ctx, chat, new_owner, onjob, day)
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": _CHAT_ERR.get(code, ERRMSG.get(code, ""))})
            continue
        key = (chat.owner, day)
        ctx.emu.chat_transfers_today[key] = ctx.emu.chat_transfers_today.get(key, 0) + 1
        if onjob:
            chat.transfers.append(ctx.now)
        chat.owner = new_owner.userid
        chat.status = 0 if onjob else 3
        if new_owner.userid not in chat.member_ids():
            chat.members.append(ChatMember(new_owner.userid, 1, ctx.now, 1, None, new_owner.name))
            st.bump_member_version(chat)
    return {"failed_chat_list": failed}


@contact("groupchat/transfer")
def groupchat_transfer(ctx: Ctx) -> dict[str, Any]:
    return _chat_transfer(ctx, onjob=False)


@contact("groupchat/onjob_transfer")
def groupchat_onjob_transfer(ctx: Ctx) -> dict[str, Any]:
    return _chat_transfer(ctx, onjob=True)
