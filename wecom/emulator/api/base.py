"""What every part of the emulated API shares: errors, the request context, the route table, paging,
argument checks and how customers and follow relations are rendered."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..state import ACTIVE, Customer, Relation, State

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..server import Emulator

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
    41054: "user not active", 41091: "chat_id_list exceeds the limit of 5", 41064: "too many attachments", 41065: "invalid attachment type",
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


def cursor_offset(ctx: Ctx, key: str = "cursor") -> int:
    parsed = dec_cursor(ctx.body.get(key), 1)
    return parsed[0] if parsed else 0


def clamp_limit(value: Any, default: int, maximum: int) -> int:
    try:
        n = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid limit") from None
    if n <= 0:
        return default
    return min(n, maximum)


def paginate(items: list[Any], offset: int, limit: int) -> tuple[list[Any], str]:
    page = items[offset:offset + limit]
    more = offset + limit < len(items)
    return page, enc_cursor(offset + limit) if more else ""


def as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(40058, f"{name} must be an array")
    return value


def text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def byte_len(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else 0


def need_member(ctx: Ctx, userid: Any, missing: int = 41009) -> Any:
    if not userid:
        raise ApiError(missing)
    member = ctx.state.staff.get(str(userid))
    if member is None:
        raise ApiError(60111, f"userid not found: {userid}")
    return member


def need_customer(ctx: Ctx, external_userid: Any) -> Customer:
    if not external_userid:
        raise ApiError(41035)
    customer = ctx.state.customers.get(str(external_userid))
    if customer is None:
        raise ApiError(40096)
    return customer


def active_relation(ctx: Ctx, userid: str, external_userid: str) -> Relation:
    rel = ctx.state.relation(userid, external_userid)
    if rel is None or rel.status != ACTIVE:
        raise ApiError(84061)
    return rel


def check_media(ctx: Ctx, media_id: Any) -> None:
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
