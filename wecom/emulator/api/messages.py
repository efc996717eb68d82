"""Mass messages and welcome messages (wecom-api.md §7)."""

from __future__ import annotations

from typing import Any

from ..state import ACTIVE, MsgTask, MsgTemplate, Relation, State
from .base import ATTACHMENT_TYPES, ApiError, Ctx, as_list, byte_len, check_media, contact, cursor_offset, need_member, paginate

# ---------------------------------------------------------------- §7 mass messages and welcome

# (default, maximum) page sizes: a `limit` above the maximum silently falls back to the DEFAULT, not to the
# maximum (wecom-api.md §7.3), so a client that asks for too much gets smaller pages, never an error.
LIST_LIMITS = (50, 100)
TASK_LIMITS = (500, 1000)
RESULT_LIMITS = (500, 1000)


def page_limit(value: Any, limits: tuple[int, int]) -> int:
    """The page size WeCom uses for a requested `limit`: the default when absent, zero or too large."""
    default, maximum = limits
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid limit") from None
    return n if 0 < n <= maximum else default


def settle(ctx: Ctx) -> None:
    """Confirm the tasks whose automatic confirmation time has come, before anything reads or spends quota."""
    MsgTemplate.settle(ctx.state, ctx.now)


def _check_content(ctx: Ctx, body: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise ApiError(40058, "text must be an object")
    content = (text or {}).get("content") or ""
    if byte_len(content) > 4000:
        raise ApiError(40058, "text.content longer than 4000 bytes")
    attachments = as_list(body.get("attachments"), "attachments")
    if not content and not attachments:
        raise ApiError(40058, "text and attachments are both empty")
    if len(attachments) > 9:
        raise ApiError(41064)
    for att in attachments:
        kind = att.get("msgtype") if isinstance(att, dict) else None
        obj = att.get(kind) if kind in ATTACHMENT_TYPES else None
        if not isinstance(obj, dict):
            raise ApiError(41065)
        if kind == "image":
            if obj.get("media_id"):
                check_media(ctx, obj["media_id"])
            elif not obj.get("pic_url"):
                raise ApiError(40058, "image needs media_id or pic_url")
        elif kind in ("video", "file"):
            check_media(ctx, obj.get("media_id"))
        elif kind == "link":
            if not obj.get("title") or not obj.get("url") or byte_len(obj["title"]) > 128 \
                    or byte_len(obj["url"]) > 2048 or byte_len(obj.get("picurl")) > 2048 or byte_len(obj.get("desc")) > 512:
                raise ApiError(40058, "invalid link attachment")
        elif kind == "miniprogram":
            if not obj.get("appid") or not obj.get("page") or not obj.get("title") or byte_len(obj["title"]) > 64:
                raise ApiError(40058, "invalid miniprogram attachment")
            check_media(ctx, obj.get("pic_media_id"))
    return ({"content": content} if content else None), attachments


def _tag_filter_ok(st: State, rel: Relation, groups: list[list[str]]) -> bool:
    if not groups:
        return True
    tags = set(st.live_tags(rel))
    return all(tags.intersection(g) for g in groups)


@contact("add_msg_template")
def add_msg_template(ctx: Ctx) -> dict[str, Any]:
    settle(ctx)
    st, body = ctx.state, ctx.body
    chat_type = body.get("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    text, attachments = _check_content(ctx, body)
    sender = body.get("sender") or None
    if sender is not None:
        member = need_member(ctx, sender)
        if member.resigned:
            raise ApiError(41054)
    fail: list[str] = []
    per_sender: dict[str, list[str]] = {}
    if chat_type == "single":
        ext_ids = [str(e) for e in as_list(body.get("external_userid"), "external_userid")]
        if len(ext_ids) > 10000:
            raise ApiError(40058, "external_userid exceeds 10000")
        if not ext_ids and not sender:
            raise ApiError(40058, "external_userid and sender are both empty")
        tag_filter = body.get("tag_filter") or {}
        groups = [list(g.get("tag_list") or []) for g in as_list(tag_filter.get("group_list"), "group_list")
                  if isinstance(g, dict)]
        if any(len(g) > 100 for g in groups):
            raise ApiError(40058, "more than 100 tags in a tag_filter group")
        if ext_ids:
            candidates = [(e, st.customers[e].follows if e in st.customers else []) for e in dict.fromkeys(ext_ids)]
        else:
            candidates = [(r.external_userid, [r]) for r in st.by_user.get(sender, []) if r.status == ACTIVE]
        for ext, follows in candidates:
            rels = [r for r in follows if r.status == ACTIVE and (sender is None or r.userid == sender)
                    and not st.staff[r.userid].resigned]
            rels = [r for r in rels if _tag_filter_ok(st, r, groups)]
            if not rels:
                if ext_ids:
                    fail.append(ext)
                continue
            chosen = max(rels, key=lambda r: r.createtime)  # the most recent contact gets the task
            per_sender.setdefault(chosen.userid, []).append(ext)
    else:
        if not sender:
            raise ApiError(41009, "sender is required for chat_type group")
        chat_ids = [str(c) for c in as_list(body.get("chat_id_list"), "chat_id_list")]
        if len(chat_ids) > 2000:
            raise ApiError(40058, "chat_id_list exceeds 2000")
        owned = [c.chat_id for c in st.group_chats.values() if c.owner == sender and not c.dismissed]
        if chat_ids:
            fail = [c for c in chat_ids if c not in owned]
            targets = [c for c in dict.fromkeys(chat_ids) if c in owned]
        else:
            targets = owned
        if targets:
            per_sender[sender] = targets
    if not per_sender:
        raise ApiError(41048)
    tpl = MsgTemplate("msg" + st.new_id("", 29), chat_type, ctx.now, text, attachments)
    for userid, targets in per_sender.items():
        tpl.tasks[userid] = MsgTask(userid, targets)
    if st.groupmsg_auto_confirm is not None:
        tpl.confirm_at = ctx.now + st.groupmsg_auto_confirm
    st.msg_templates[tpl.msgid] = tpl
    return {"fail_list": fail, "msgid": tpl.msgid}


def _template(ctx: Ctx) -> MsgTemplate:
    settle(ctx)
    msgid = ctx.body.get("msgid")
    if not msgid:
        raise ApiError(41046)
    tpl = ctx.state.msg_templates.get(str(msgid))
    if tpl is None:
        raise ApiError(41047)
    return tpl


@contact("get_groupmsg_list_v2")
def get_groupmsg_list_v2(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    chat_type = body.get("chat_type")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    try:
        start, end = int(body["start_time"]), int(body["end_time"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(40058, "start_time and end_time are required") from None
    if end < start or end - start > 31 * 86400:
        raise ApiError(40058, "the time span must be at most one month")
    filter_type = body.get("filter_type", 2)
    creator = body.get("creator")
    limit = page_limit(body.get("limit"), LIST_LIMITS)
    settle(ctx)
    rows = []
    for tpl in ctx.state.msg_templates.values():
        if tpl.chat_type != chat_type or not start <= tpl.create_time <= end:
            continue
        if filter_type in (0, 1) and tpl.create_type != filter_type:
            continue
        if creator and tpl.creator != creator:
            continue
        item: dict[str, Any] = {"msgid": tpl.msgid, "create_time": tpl.create_time, "create_type": tpl.create_type}
        if tpl.creator:
            item["creator"] = tpl.creator
        if tpl.text:
            item["text"] = tpl.text
        item["attachments"] = tpl.attachments
        rows.append(item)
    page, cursor = paginate(rows, cursor_offset(ctx), limit)
    return {"next_cursor": cursor, "group_msg_list": page}


@contact("get_groupmsg_task")
def get_groupmsg_task(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    if tpl.cancelled:  # wecom-api.md §7.3: a cancelled mass message answers 41093 here
        raise ApiError(41093)
    rows = []
    for task in tpl.tasks.values():
        item: dict[str, Any] = {"userid": task.userid, "status": task.status}
        if task.status:
            item["send_time"] = task.send_time
        rows.append(item)
    page, cursor = paginate(rows, cursor_offset(ctx), page_limit(ctx.body.get("limit"), TASK_LIMITS))
    return {"next_cursor": cursor, "task_list": page}


@contact("get_groupmsg_send_result")
def get_groupmsg_send_result(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    member = need_member(ctx, ctx.body.get("userid"))
    task = tpl.tasks.get(member.userid)
    rows = []
    key = "external_userid" if tpl.chat_type == "single" else "chat_id"
    for target in (task.targets if task else []):
        status, when = task.results.get(target, (0, 0)) if task else (0, 0)
        if tpl.chat_type == "group" and status != 1:
            continue  # the owner picks the chats when confirming: only chats already sent are listed
        item: dict[str, Any] = {key: target, "userid": member.userid, "status": status}
        if status == 1:
            item["send_time"] = when
        rows.append(item)
    page, cursor = paginate(rows, cursor_offset(ctx), page_limit(ctx.body.get("limit"), RESULT_LIMITS))
    return {"next_cursor": cursor, "send_list": page}


@contact("remind_groupmsg_send")
def remind_groupmsg_send(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    if tpl.cancelled:
        raise ApiError(41093)
    recent = [t for t in tpl.reminders if t > ctx.now - 86400]
    if len(recent) >= 3:
        raise ApiError(41094)
    tpl.reminders.append(ctx.now)
    return {}


@contact("cancel_groupmsg_send")
def cancel_groupmsg_send(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    if tpl.cancelled:
        raise ApiError(41093)
    tpl.cancelled = True
    return {}


@contact("send_welcome_msg")
def send_welcome_msg(ctx: Ctx) -> dict[str, Any]:
    code = ctx.body.get("welcome_code")
    if not code:
        raise ApiError(41049)
    entry = ctx.state.welcome_codes.get(str(code))
    if entry is None or ctx.now > entry["expires_at"]:
        raise ApiError(41050)
    if entry["used"]:
        raise ApiError(41051)
    text, attachments = _check_content(ctx, ctx.body)
    entry["used"] = True
    ctx.state.welcome_messages.append({"userid": entry["userid"], "external_userid": entry["external_userid"],
                                       "text": text, "attachments": attachments, "time": ctx.now})
    return {}
