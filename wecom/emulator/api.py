"""WeCom's server API as the emulator answers it (wecom-api.md §0–§13).

Each handler takes a `Ctx` and returns the success fields (errcode/errmsg are added), or raises
`ApiError(errcode, errmsg)`. API-initiated changes never emit callbacks (§3, §11).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .state import (ACTIVE, CUSTOMER_DELETED, MEMBER_RESIGNED, TRANSFER_WINDOW, VISIBLE, ChatMember,
                    Customer, MsgTask, MsgTemplate, Relation, State, Tag, TagGroup)

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .server import Emulator

ERRMSG = {
    -1: "system busy", 40001: "invalid credential", 40003: "invalid userid", 40004: "invalid media type",
    40005: "invalid file type", 40006: "invalid file size", 40007: "invalid media_id", 40008: "invalid message type",
    40013: "invalid corpid", 40014: "invalid access_token", 40029: "invalid code", 40050: "chatid not found",
    40056: "invalid agentid", 40058: "invalid Request Parameter", 40068: "invalid tagid", 40071: "UserTag Name Already Exist",
    40072: "invalid tagname", 40096: "invalid external userid", 40097: "user not resigned",
    40126: "the number of external contact tags is over the limit", 40128: "transfer too frequently",
    40129: "customer is on transfer", 40130: "handover_userid is equal to takeover_userid",
    40131: "handover_userid is not the follower", 41001: "access_token missing", 41002: "corpid missing",
    41004: "corpsecret missing", 41005: "media data missing", 41008: "missing code", 41009: "missing userid",
    41017: "missing tagid", 41018: "missing tagname", 41035: "missing external userid",
    41041: "contact way user limit", 41046: "missing msgid", 41047: "invalid msgid", 41048: "no customer to send",
    41049: "missing welcome code", 41050: "invalid welcome code", 41051: "externaluser has started chatting",
    41054: "user not active", 41064: "too many attachments", 41065: "invalid attachment type",
    41093: "group msg task is cancelled", 41094: "remind group msg too frequently", 42001: "access_token expired",
    42012: "jsapi_ticket is not valid for agent config", 45009: "api freq out of limit",
    45033: "api concurrent out of limit", 48002: "api forbidden", 49008: "group chat is dismissed",
    60111: "userid not found", 81013: "user & party & tag all invalid",
    81017: "too many users in app visible range, please use owner_filter", 84061: "not external contact",
}

TOKEN_TTL = 7200
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
MEDIA_TTL = 3 * 86400
MEDIA_LIMITS = {"image": (10 << 20, ("jpg", "jpeg", "png")), "voice": (2 << 20, ("amr",)),
                "video": (10 << 20, ("mp4",)), "file": (20 << 20, None)}


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")


@dataclass
class Ctx:
    emu: "Emulator"
    query: dict[str, str]
    body: dict[str, Any]
    app: str | None = None  # "contact" | "agent": whose token was used
    request: "Request | None" = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.emu.state

    @property
    def now(self) -> int:
        return self.emu.clock.now()


Handler = Callable[[Ctx], dict[str, Any]]
# path -> (method, auth, handler); auth: None (no token), "any", "externalcontact"
ROUTES: dict[str, tuple[str, str | None, Handler]] = {}


def route(path: str, method: str = "POST", auth: str | None = "any") -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES["/cgi-bin/" + path] = (method, auth, fn)
        return fn
    return deco


def contact(path: str, method: str = "POST") -> Callable[[Handler], Handler]:
    return route("externalcontact/" + path, method, "externalcontact")


# ---------------------------------------------------------------- helpers


def enc_cursor(*parts: Any) -> str:
    raw = ("v1|" + "|".join(str(p) for p in parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def dec_cursor(cursor: Any, n: int) -> list[int] | None:
    """None for an empty cursor; ApiError 40058 for one we did not issue."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
        tag, *parts = text.split("|")
        if tag != "v1" or len(parts) != n:
            raise ValueError(text)
        return [int(p) for p in parts]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(40058, "invalid cursor") from None


def _offset(ctx: Ctx, key: str = "cursor") -> int:
    parsed = dec_cursor(ctx.body.get(key), 1)
    return parsed[0] if parsed else 0


def _limit(value: Any, default: int, maximum: int) -> int:
    try:
        n = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid limit") from None
    if n <= 0:
        return default
    return min(n, maximum)


def _page(items: list[Any], offset: int, limit: int) -> tuple[list[Any], str]:
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    return page, enc_cursor(offset + limit) if more else ""


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(40058, f"{name} must be an array")
    return value


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _bytes(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else 0


def _member(ctx: Ctx, userid: Any, missing: int = 41009) -> Any:
    if not userid:
        raise ApiError(missing)
    member = ctx.state.staff.get(str(userid))
    if member is None:
        raise ApiError(60111, f"userid not found: {userid}")
    return member


def _customer(ctx: Ctx, external_userid: Any) -> Customer:
    if not external_userid:
        raise ApiError(41035)
    customer = ctx.state.customers.get(str(external_userid))
    if customer is None:
        raise ApiError(40096)
    return customer


def _active_relation(ctx: Ctx, userid: str, external_userid: str) -> Relation:
    rel = ctx.state.relation(userid, external_userid)
    if rel is None or rel.status != ACTIVE:
        raise ApiError(84061)
    return rel


def _media_ok(ctx: Ctx, media_id: Any) -> None:
    media = ctx.state.media.get(str(media_id)) if media_id else None
    if media is None or media["created_at"] + MEDIA_TTL < ctx.now:
        raise ApiError(40007, f"invalid media_id: {media_id}")


# ---------------------------------------------------------------- rendering


def render_contact(customer: Customer) -> dict[str, Any]:
    out: dict[str, Any] = {"external_userid": customer.external_userid, "name": customer.name,
                           "type": customer.type, "avatar": customer.avatar, "gender": customer.gender}
    if customer.unionid:
        out["unionid"] = customer.unionid
    if customer.type == 2:
        out["position"] = customer.position or ""
        out["corp_name"] = customer.corp_name or ""
        out["corp_full_name"] = customer.corp_full_name or ""
        out["external_profile"] = {"external_attr": []}
    return out


def _follow_common(st: State, rel: Relation) -> dict[str, Any]:
    out: dict[str, Any] = {"userid": rel.userid, "remark": rel.remark, "description": rel.description,
                           "createtime": rel.createtime}
    return out


def _follow_tail(rel: Relation, out: dict[str, Any]) -> dict[str, Any]:
    out["remark_corp_name"] = rel.remark_corp_name
    out["remark_mobiles"] = list(rel.remark_mobiles)
    out["oper_userid"] = rel.oper_userid
    out["add_way"] = rel.add_way
    if rel.state:
        out["state"] = rel.state
    return out


def render_follow_user(st: State, rel: Relation) -> dict[str, Any]:
    out = _follow_common(st, rel)
    tags = []
    for tid in st.live_tags(rel):
        tag = st.tags[tid]
        tags.append({"group_name": st.tag_groups[tag.group_id].name, "tag_name": tag.name, "tag_id": tid, "type": 1})
    out["tags"] = tags
    return _follow_tail(rel, out)


def render_follow_info(st: State, rel: Relation) -> dict[str, Any]:
    out = _follow_common(st, rel)
    out["tag_id"] = st.live_tags(rel)
    return _follow_tail(rel, out)


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
    member = _member(ctx, ctx.query.get("userid"))
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
        if not content or _bytes(content) > 2048:
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


# ---------------------------------------------------------------- §4 customers


@contact("get_follow_user_list", "GET")
def get_follow_user_list(ctx: Ctx) -> dict[str, Any]:
    return {"follow_user": ctx.state.follow_users()}


@contact("list", "GET")
def external_list(ctx: Ctx) -> dict[str, Any]:
    member = _member(ctx, ctx.query.get("userid"))
    rels = ctx.state.by_user.get(member.userid, [])
    return {"external_userid": [r.external_userid for r in rels if r.status in VISIBLE]}


@contact("get", "GET")
def external_get(ctx: Ctx) -> dict[str, Any]:
    customer = _customer(ctx, ctx.query.get("external_userid"))
    follows = ctx.state.visible_follows(customer)
    if not follows:
        raise ApiError(84061)
    offset = dec_cursor(ctx.query.get("cursor"), 1)
    start = offset[0] if offset else 0
    page = follows[start:start + 500]
    out: dict[str, Any] = {"external_contact": render_contact(customer),
                           "follow_user": [render_follow_user(ctx.state, r) for r in page]}
    if start + 500 < len(follows):
        out["next_cursor"] = enc_cursor(start + 500)
    return out


@contact("batch/get_by_user")
def batch_get_by_user(ctx: Ctx) -> dict[str, Any]:
    userids = _list(ctx.body.get("userid_list"), "userid_list")
    if not userids:
        raise ApiError(41009, "userid_list is empty")
    if len(userids) > 100:
        raise ApiError(40058, "userid_list exceeds 100")
    limit = _limit(ctx.body.get("limit"), 50, 100)
    pos = dec_cursor(ctx.body.get("cursor"), 2) or [0, 0]
    st = ctx.state
    rows: list[dict[str, Any]] = []
    ui, i = pos
    next_cursor = ""
    while ui < len(userids):
        rels = st.by_user.get(str(userids[ui]), [])
        while i < len(rels):
            rel = rels[i]
            if rel.status in VISIBLE:
                if len(rows) == limit:
                    next_cursor = enc_cursor(ui, i)
                    break
                rows.append({"external_contact": render_contact(st.customers[rel.external_userid]),
                             "follow_info": render_follow_info(st, rel)})
            i += 1
        if next_cursor:
            break
        ui, i = ui + 1, 0
    return {"external_contact_list": rows, "next_cursor": next_cursor}


@contact("remark")
def remark(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    member = _member(ctx, body.get("userid"))
    customer = _customer(ctx, body.get("external_userid"))
    keys = ("remark", "description", "remark_company", "remark_mobiles", "remark_pic_mediaid")
    if not any(body.get(k) not in (None, "", []) for k in keys):
        raise ApiError(40058, "remark, description, remark_company, remark_mobiles and remark_pic_mediaid are all empty")
    for key, cap in (("remark", 20), ("description", 150), ("remark_company", 20)):
        if _text_len(body.get(key)) > cap:
            raise ApiError(40058, f"{key} longer than {cap} characters")
    mobiles = _list(body.get("remark_mobiles"), "remark_mobiles") if "remark_mobiles" in body else None
    if body.get("remark_pic_mediaid"):
        _media_ok(ctx, body["remark_pic_mediaid"])
    rel = _active_relation(ctx, member.userid, customer.external_userid)
    if "remark" in body:
        rel.remark = str(body["remark"] or "")
    if "description" in body:
        rel.description = str(body["description"] or "")
    if "remark_company" in body and customer.type == 1:
        rel.remark_corp_name = str(body["remark_company"] or "")
    if mobiles is not None:
        rel.remark_mobiles = tuple(str(m) for m in mobiles if m)
    return {}


# ---------------------------------------------------------------- §4.6 corp tags


def _tag_json(tag: Tag, with_deleted: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order}
    if with_deleted:
        out["deleted"] = tag.deleted
    return out


def _group_json(st: State, group: TagGroup, tags: list[Tag], with_deleted: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"group_id": group.group_id, "group_name": group.name, "create_time": group.create_time,
                           "order": group.order}
    if with_deleted:
        out["deleted"] = group.deleted
    out["tag"] = [_tag_json(t, with_deleted) for t in sorted(tags, key=lambda t: -t.order)]
    return out


@contact("get_corp_tag_list")
def get_corp_tag_list(ctx: Ctx) -> dict[str, Any]:
    st = ctx.state
    tag_ids = _list(ctx.body.get("tag_id"), "tag_id")
    group_ids = _list(ctx.body.get("group_id"), "group_id")
    result: list[dict[str, Any]] = []
    if group_ids:
        for gid in dict.fromkeys(group_ids):
            group = st.tag_groups.get(gid)
            if group is not None:
                result.append(_group_json(st, group, [st.tags[t] for t in group.tag_ids], True))
    elif tag_ids:
        by_group: dict[str, list[Tag]] = {}
        for tid in dict.fromkeys(tag_ids):
            if tid in st.tags:
                by_group.setdefault(st.tags[tid].group_id, []).append(st.tags[tid])
        for gid, tags in by_group.items():
            result.append(_group_json(st, st.tag_groups[gid], tags, True))
    else:
        groups = sorted((g for g in st.tag_groups.values() if not g.deleted), key=lambda g: -g.order)
        for group in groups:
            tags = [st.tags[t] for t in group.tag_ids if not st.tags[t].deleted]
            result.append(_group_json(st, group, tags, False))
    return {"tag_group": result}


def _check_tag_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(41018)
    if len(name) > 30:
        raise ApiError(40072, "tag name longer than 30 characters")
    return name


def _order(value: Any) -> int:
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid order") from None
    if not 0 <= n < 2**32:
        raise ApiError(40058, "order out of range [0, 2^32)")
    return n


@contact("add_corp_tag")
def add_corp_tag(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    wanted = _list(body.get("tag"), "tag")
    if not wanted:
        raise ApiError(41018, "tag list is empty (empty groups cannot be created)")
    names: dict[str, int] = {}
    for item in wanted:
        if not isinstance(item, dict):
            raise ApiError(40058, "tag items must be objects")
        names.setdefault(_check_tag_name(item.get("name")), _order(item.get("order")))
    group: TagGroup | None = None
    if body.get("group_id"):
        group = st.tag_groups.get(str(body["group_id"]))
        if group is None or group.deleted:
            raise ApiError(40068, f"invalid group_id: {body['group_id']}")
    else:
        group_name = _check_tag_name(body.get("group_name"))
        group = next((g for g in st.tag_groups.values() if g.name == group_name and not g.deleted), None)
        if group is None:
            group = TagGroup(st.new_id("et"), group_name, ctx.now, _order(body.get("order")))
            new_group = True
        else:
            new_group = False
        ctx.extra["new_group"] = new_group
    existing = {st.tags[t].name for t in group.tag_ids if not st.tags[t].deleted}
    if any(n in existing for n in names):
        raise ApiError(40071)
    if sum(1 for t in st.tags.values() if not t.deleted) + len(names) > ctx.emu.corp_tag_limit:
        raise ApiError(40126)
    if ctx.extra.get("new_group"):
        st.tag_groups[group.group_id] = group
    created = []
    for name, order in names.items():
        tag = Tag(st.new_id("et"), name, group.group_id, ctx.now, order)
        st.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        created.append(tag)
    return {"tag_group": _group_json(st, group, created, False)}


@contact("edit_corp_tag")
def edit_corp_tag(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    obj_id = body.get("id")
    if not obj_id:
        raise ApiError(41017)
    name = _check_tag_name(body["name"]) if "name" in body else None
    order = _order(body["order"]) if "order" in body else None
    if obj_id in st.tags and not st.tags[obj_id].deleted:
        tag = st.tags[obj_id]
        siblings = st.tag_groups[tag.group_id].tag_ids
        if name is not None and any(st.tags[t].name == name and t != tag.id and not st.tags[t].deleted
                                    for t in siblings):
            raise ApiError(40071)
        target: Tag | TagGroup = tag
    elif obj_id in st.tag_groups and not st.tag_groups[obj_id].deleted:
        if name is not None and any(g.name == name and g.group_id != obj_id and not g.deleted
                                    for g in st.tag_groups.values()):
            raise ApiError(40071, "tag group name already exists")
        target = st.tag_groups[obj_id]
    else:
        raise ApiError(40068)
    if name is not None:
        target.name = name
    if order is not None:
        target.order = order
    return {}


@contact("del_corp_tag")
def del_corp_tag(ctx: Ctx) -> dict[str, Any]:
    st = ctx.state
    tag_ids = _list(ctx.body.get("tag_id"), "tag_id")
    group_ids = _list(ctx.body.get("group_id"), "group_id")
    if not tag_ids and not group_ids:
        raise ApiError(41017, "tag_id and group_id are both empty")
    for tid in tag_ids:
        if tid not in st.tags or st.tags[tid].deleted:
            raise ApiError(40068, f"invalid tagid: {tid}")
    for gid in group_ids:
        if gid not in st.tag_groups or st.tag_groups[gid].deleted:
            raise ApiError(40068, f"invalid group_id: {gid}")
    for gid in group_ids:
        st.tag_groups[gid].deleted = True
        for tid in st.tag_groups[gid].tag_ids:
            st.tags[tid].deleted = True
    for tid in tag_ids:
        tag = st.tags[tid]
        tag.deleted = True
        group = st.tag_groups[tag.group_id]
        if all(st.tags[t].deleted for t in group.tag_ids):
            group.deleted = True
    return {}


@contact("mark_tag")
def mark_tag(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    member = _member(ctx, body.get("userid"))
    customer = _customer(ctx, body.get("external_userid"))
    add = _list(body.get("add_tag"), "add_tag")
    remove = _list(body.get("remove_tag"), "remove_tag")
    if not add and not remove:
        raise ApiError(41017, "add_tag and remove_tag are both empty")
    rel = _active_relation(ctx, member.userid, customer.external_userid)
    for tid in add + remove:
        if tid not in st.tags or st.tags[tid].deleted:
            raise ApiError(40068, f"invalid tagid: {tid}")
    tags = [t for t in st.live_tags(rel) if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags]
    rel.tags = tuple(tags)
    return {}


# ---------------------------------------------------------------- §5 handover


def _transfer(ctx: Ctx, kind: str) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    handover = _member(ctx, body.get("handover_userid"))
    takeover = _member(ctx, body.get("takeover_userid"))
    if handover.userid == takeover.userid:
        raise ApiError(40130)
    if takeover.resigned:
        raise ApiError(41054, "takeover member is not active")
    if kind == "resigned" and not handover.resigned:
        raise ApiError(40097)
    ext_ids = _list(body.get("external_userid"), "external_userid")
    if not ext_ids:
        raise ApiError(41035)
    if len(ext_ids) > 100:
        raise ApiError(40058, "external_userid exceeds 100")
    if kind == "onjob" and _text_len(body.get("transfer_success_msg")) > 200:
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
    handover = _member(ctx, body.get("handover_userid"))
    takeover = _member(ctx, body.get("takeover_userid"))
    latest: dict[str, Any] = {}
    for t in st.transfers:
        if t.kind == kind and t.handover == handover.userid and t.takeover == takeover.userid:
            latest[t.external_userid] = t
    rows = [{"external_userid": t.external_userid, "status": t.status, "takeover_time": t.takeover_time}
            for t in latest.values()]
    page, cursor = _page(rows, _offset(ctx), 1000)
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
    size = _limit(body.get("page_size"), 1000, 1000)
    rows = []
    resigned = sorted((m for m in st.staff.values() if m.status == MEMBER_RESIGNED),
                      key=lambda m: (-m.dimission_time, m.userid))
    for member in resigned:
        for rel in st.by_user.get(member.userid, []):
            if rel.status in VISIBLE and rel.external_userid not in st.pending_by_customer:
                rows.append({"handover_userid": member.userid, "external_userid": rel.external_userid,
                             "dimission_time": member.dimission_time})
    if "page_id" in body and not body.get("cursor"):
        start = _limit(body.get("page_id"), 0, 10**9) * size if body.get("page_id") else 0
        page = rows[start:start + size]
        return {"info": page, "is_last": start + size >= len(rows)}
    page, cursor = _page(rows, _offset(ctx), size)
    return {"info": page, "is_last": not cursor, "next_cursor": cursor}


def _chat_transfer(ctx: Ctx, onjob: bool) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    chat_ids = _list(body.get("chat_id_list"), "chat_id_list")
    if not 1 <= len(chat_ids) <= 100:
        raise ApiError(40058, "chat_id_list must hold 1 to 100 chat ids")
    new_owner = _member(ctx, body.get("new_owner"))
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
    owners = _list(owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None, "userid_list")
    if len(owners) > 100:
        raise ApiError(40058, "owner_filter.userid_list exceeds 100")
    if not owners and len(st.staff) > 1000:
        raise ApiError(81017)
    chats = [c for c in st.group_chats.values() if not c.dismissed
             and (not owners or c.owner in owners) and (not status_filter or c.status == status_filter)]
    page, cursor = _page(chats, _offset(ctx), limit)
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


# ---------------------------------------------------------------- §7 mass messages and welcome


def _check_content(ctx: Ctx, body: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    text = body.get("text")
    if text is not None and not isinstance(text, dict):
        raise ApiError(40058, "text must be an object")
    content = (text or {}).get("content") or ""
    if _bytes(content) > 4000:
        raise ApiError(40058, "text.content longer than 4000 bytes")
    attachments = _list(body.get("attachments"), "attachments")
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
                _media_ok(ctx, obj["media_id"])
            elif not obj.get("pic_url"):
                raise ApiError(40058, "image needs media_id or pic_url")
        elif kind in ("video", "file"):
            _media_ok(ctx, obj.get("media_id"))
        elif kind == "link":
            if not obj.get("title") or not obj.get("url") or _bytes(obj["title"]) > 128 \
                    or _bytes(obj["url"]) > 2048 or _bytes(obj.get("picurl")) > 2048 or _bytes(obj.get("desc")) > 512:
                raise ApiError(40058, "invalid link attachment")
        elif kind == "miniprogram":
            if not obj.get("appid") or not obj.get("page") or not obj.get("title") or _bytes(obj["title"]) > 64:
                raise ApiError(40058, "invalid miniprogram attachment")
            _media_ok(ctx, obj.get("pic_media_id"))
    return ({"content": content} if content else None), attachments


def _tag_filter_ok(st: State, rel: Relation, groups: list[list[str]]) -> bool:
    if not groups:
        return True
    tags = set(st.live_tags(rel))
    return all(tags.intersection(g) for g in groups)


@contact("add_msg_template")
def add_msg_template(ctx: Ctx) -> dict[str, Any]:
    st, body = ctx.state, ctx.body
    chat_type = body.get("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    text, attachments = _check_content(ctx, body)
    sender = body.get("sender") or None
    if sender is not None:
        member = _member(ctx, sender)
        if member.resigned:
            raise ApiError(41054)
    fail: list[str] = []
    per_sender: dict[str, list[str]] = {}
    if chat_type == "single":
        ext_ids = [str(e) for e in _list(body.get("external_userid"), "external_userid")]
        if len(ext_ids) > 10000:
            raise ApiError(40058, "external_userid exceeds 10000")
        if not ext_ids and not sender:
            raise ApiError(40058, "external_userid and sender are both empty")
        tag_filter = body.get("tag_filter") or {}
        groups = [list(g.get("tag_list") or []) for g in _list(tag_filter.get("group_list"), "group_list")
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
        chat_ids = [str(c) for c in _list(body.get("chat_id_list"), "chat_id_list")]
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
    st.msg_templates[tpl.msgid] = tpl
    return {"fail_list": fail, "msgid": tpl.msgid}


def _template(ctx: Ctx) -> MsgTemplate:
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
    limit = _limit(body.get("limit"), 50, 100)
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
    page, cursor = _page(rows, _offset(ctx), limit)
    return {"next_cursor": cursor, "group_msg_list": page}


@contact("get_groupmsg_task")
def get_groupmsg_task(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    rows = []
    for task in tpl.tasks.values():
        item: dict[str, Any] = {"userid": task.userid, "status": task.status}
        if task.status:
            item["send_time"] = task.send_time
        rows.append(item)
    page, cursor = _page(rows, _offset(ctx), _limit(ctx.body.get("limit"), 500, 1000))
    return {"next_cursor": cursor, "task_list": page}


@contact("get_groupmsg_send_result")
def get_groupmsg_send_result(ctx: Ctx) -> dict[str, Any]:
    tpl = _template(ctx)
    member = _member(ctx, ctx.body.get("userid"))
    task = tpl.tasks.get(member.userid)
    rows = []
    key = "external_userid" if tpl.chat_type == "single" else "chat_id"
    for target in (task.targets if task else []):
        status, when = task.results.get(target, (0, 0)) if task else (0, 0)
        item: dict[str, Any] = {key: target, "userid": member.userid, "status": status}
        if status == 1:
            item["send_time"] = when
        rows.append(item)
    page, cursor = _page(rows, _offset(ctx), _limit(ctx.body.get("limit"), 500, 1000))
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
    if _text_len(way.get("remark")) > 30 or _text_len(way.get("state")) > 30:
        raise ApiError(40058, "remark and state are at most 30 characters")
    users = [str(u) for u in _list(way.get("user"), "user")]
    parties = _list(way.get("party"), "party")
    if way["type"] == 1 and (len(users) != 1 or parties):
        raise ApiError(40058, "type 1 needs exactly one user")
    if not users and not parties:
        raise ApiError(41009, "user and party are both empty")
    for userid in users:
        member = _member(ctx, userid)
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
    page, cursor = _page(rows, _offset(ctx), _limit(body.get("limit"), 100, 1000))
    return {"contact_way": page, "next_cursor": cursor}


# ---------------------------------------------------------------- §13.2 media


@route("media/upload")
def media_upload(ctx: Ctx) -> dict[str, Any]:
    kind = ctx.query.get("type")
    if kind not in MEDIA_LIMITS:
        raise ApiError(40004)
    assert ctx.request is not None
    upload = ctx.request.files.get("media")
    if upload is None or not upload.filename:
        raise ApiError(41005)
    data = upload.read()
    cap, exts = MEDIA_LIMITS[kind]
    if len(data) <= 5 or len(data) > cap:
        raise ApiError(40006)
    ext = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
    if exts is not None and ext not in exts:
        raise ApiError(40005)
    media_id = "1" + ctx.state.new_id("", 43)
    ctx.state.media[media_id] = {"type": kind, "created_at": ctx.now, "filename": upload.filename,
                                 "size": len(data), "content_type": upload.content_type}
    return {"errmsg": "", "type": kind, "media_id": media_id, "created_at": str(ctx.now)}
