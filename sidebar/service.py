"""What the sidebar and the customer API read and write. Services flush; the request commits once.

Visibility: a principal sees a customer when one of the customer's follow relations belongs to a
staff member in their scope (`identity.web.scope_for`). Anything else is answered exactly like
a customer that does not exist (`CustomerNotFound` → 404), so ids cannot be probed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import selectinload

from core.db import db, utcnow
from core.errors import NotFound, ScrmError, Unavailable, UserValueError
from crm.handlers import apply_customer_detail
from crm.models import (Customer, FollowRelation, FollowUp, GroupChat, GroupChatMember, StageChange, Staff, Tag,
                        TagAssignment, TagGroup)
from crm.service import parse_next_at, state_labels, write_followup
from identity.service import Principal, Scope
from identity.web import scope_for
from tagging.lifecycle.models import BehaviorEvent
from tagging.lifecycle.stages import change_stage
from tagging.lifecycle.stages import stage_names as configured_stage_names
from tagging.lifecycle.tiers import customer_tier
from tagging.segments.service import FilterError, filter_condition, scope_condition
from wecom.client import WeComError, contact_client
from wecom.models import OutboxCommand

log = logging.getLogger("scrm.sidebar")

FOLLOWUPS_SHOWN = 50
NOT_FOUND_ERRCODES = {40096, 84061, 40003}  # invalid external_userid / not a customer / invalid id


class CustomerNotFound(NotFound):
    """No such customer, or not one the principal may see (the two are never told apart)."""

    def __init__(self, external_userid: str = "") -> None:
        super().__init__("找不到该客户")
        self.external_userid = external_userid


class WeComUnavailable(Unavailable):
    """The customer is not synced yet and WeCom could not be asked right now."""

    code = "wecom_unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__("企业微信暂时无法访问，客户资料尚未同步，请稍后重试")
        self.detail = detail


# ---------------------------------------------------------------- loading and visibility


def _customer(corp_id: str, external_userid: str, *, refresh: bool = False) -> Customer | None:
    query = (select(Customer).where(Customer.corp_id == corp_id, Customer.external_userid == external_userid)
             .options(selectinload(Customer.relations)))
    if refresh:
        query = query.execution_options(populate_existing=True)
    return db.session.scalar(query)


def fetch_customer(corp_id: str, external_userid: str) -> Customer | None:
    """Fetch a customer the full sync has not brought in yet (`externalcontact/get`) and store it.

    None when WeCom does not know the id; `WeComUnavailable` when WeCom cannot be asked now.
    """
    client = contact_client()
    try:
        data = client.get_external_contact(external_userid)
    except WeComError as exc:
        if exc.errcode in NOT_FOUND_ERRCODES:
            return None
        log.warning("sidebar.fetch.failed external_userid=%s errcode=%s", external_userid, exc.errcode)
        raise WeComUnavailable(str(exc)) from exc
    if not data.get("follow_user"):
        return None
    apply_customer_detail(corp_id, data, client)
    db.session.flush()
    log.info("sidebar.fetch.done external_userid=%s relations=%s", external_userid, len(data["follow_user"]))
    return _customer(corp_id, external_userid, refresh=True)


def load_customer(principal: Principal, external_userid: str, *, fetch: bool = True) -> Customer:
    """The customer if the principal may see it; fetched from WeCom on demand when not synced yet."""
    if not external_userid or len(external_userid) > 64:
        raise CustomerNotFound(external_userid)
    customer = _customer(principal.corp_id, external_userid)
    scope = scope_for(principal)
    if fetch and (customer is None or (
            principal.userid and not scope.allows_any(r.userid for r in customer.relations)
            and all(r.userid != principal.userid for r in customer.relations))):
        # Not synced yet, or the staff member's own relation is newer than our copy: ask WeCom.
        customer = fetch_customer(principal.corp_id, external_userid) or customer
    if customer is None or not scope.allows_any(r.userid for r in customer.relations):
        raise CustomerNotFound(external_userid)
    return customer


def editable_relation(principal: Principal, customer: Customer, userid: str | None) -> FollowRelation:
    """The relation whose tags the principal changes: their own by default; another's if in scope."""
    target = userid or principal.userid
    if not target:
        raise UserValueError("请指明要修改哪位成员的客户关系（userid）")
    if target != principal.userid and not scope_for(principal).allows(target):
        raise CustomerNotFound(customer.external_userid)
    for rel in customer.relations:
        if rel.userid == target:
            if rel.status != "active":
                raise UserValueError("该成员已不再跟进此客户")
            return rel
    raise UserValueError(f"成员 {target} 没有跟进此客户")


# ---------------------------------------------------------------- reading


def latest_customer(corp_id: str, userid: str) -> str | None:
    """The external_userid of the customer `userid` added most recently (the demo link's default)."""
    return db.session.scalar(select(Customer.external_userid).join(FollowRelation)
                             .where(FollowRelation.corp_id == corp_id, FollowRelation.userid == userid,
                                    FollowRelation.status == "active")
                             .order_by(FollowRelation.added_at.desc(), FollowRelation.id.desc()).limit(1))


def stage_names(corp_id: str) -> list[str]:
    """The corp's ordered stages (`tagging.lifecycle.stages` owns the list and its default)."""
    return configured_stage_names(corp_id)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _tag_sync_states(relation_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The state of the latest tag change sent (or waiting) for each relation, from the outbox."""
    if not relation_ids:
        return {}
    rows = db.session.scalars(select(OutboxCommand).where(OutboxCommand.relation_id.in_(relation_ids),
                                                          OutboxCommand.kind == "mark_tag")
                              .order_by(OutboxCommand.id.desc())).all()
    states: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.relation_id is None or row.relation_id in states:
            continue
        states[row.relation_id] = {"command_id": row.id, "status": row.status,
                                   "errcode": row.last_errcode, "error": row.last_error}
    return states


def sync_message(state: dict[str, Any] | None) -> str:
    """The sync state of a tag change in plain Chinese."""
    if not state:
        return ""
    status = state.get("status")
    if status == "done":
        return "已同步到企业微信"
    if status == "failed":
        code = int(state.get("errcode") or 0)
        reasons: dict[int, str] = {40068: "标签在企业微信中已不存在", 84061: "该客户已不是此成员的客户",
                   40096: "客户不存在", 45009: "企业微信调用太频繁"}
        return f"同步失败：{reasons.get(code, state.get('error') or '企业微信拒绝了此次修改')}" + (
            f"（错误码 {code}）" if code else "")
    return "正在同步到企业微信…"


def profile(principal: Principal, customer: Customer) -> dict[str, Any]:
    """The profile of the API contract: customer fields, follow users with tags, follow-ups, group chats."""
    corp_id = customer.corp_id
    relations = sorted(customer.relations, key=lambda r: (r.status != "active", r.added_at or utcnow()))
    rel_ids = [r.id for r in relations]
    channel_names = state_labels(corp_id, [r.state for r in relations])
    tags_by_rel: dict[int, list[dict[str, str]]] = {rid: [] for rid in rel_ids}
    if rel_ids:
        for rid, tag_id, name, group_name in db.session.execute(
                select(TagAssignment.relation_id, Tag.tag_id, Tag.name, TagGroup.name)
                .join(Tag, Tag.id == TagAssignment.tag_pk).join(TagGroup, TagGroup.id == Tag.group_pk)
                .where(TagAssignment.customer_id == customer.id)
                .order_by(TagGroup.order.desc(), Tag.order.desc(), Tag.id)):
            if rid in tags_by_rel:
                tags_by_rel[rid].append({"tag_id": tag_id, "name": name, "group_name": group_name})
    staff_names = _staff_names(corp_id, {r.userid for r in relations})
    sync_states = _tag_sync_states(rel_ids)
    followups = db.session.scalars(select(FollowUp).where(FollowUp.customer_id == customer.id)
                                   .order_by(FollowUp.created_at.desc(), FollowUp.id.desc())
                                   .limit(FOLLOWUPS_SHOWN)).all()
    staff_names.update(_staff_names(corp_id, {f.userid for f in followups} - set(staff_names)))
    chats = db.session.execute(
        select(GroupChat.chat_id, GroupChat.name, GroupChat.owner_userid)
        .join(GroupChatMember, GroupChatMember.chat_pk == GroupChat.id)
        .where(GroupChatMember.corp_id == corp_id, GroupChatMember.member_id == customer.external_userid,
               GroupChatMember.left_at.is_(None), GroupChat.dismissed_at.is_(None))
        .order_by(GroupChat.name).limit(50)).all()
    stage = stage_info(customer)
    return {
        "external_userid": customer.external_userid,
        "name": customer.name,
        "avatar": customer.avatar,
        "type": customer.type,
        "corp_name": customer.corp_name or customer.corp_full_name,
        "position": customer.position,
        "stage": customer.stage,
        "stage_since": stage["since"],
        "stage_days": stage["days"],
        "stages": stage_names(corp_id),
        "tier": value_tier(customer),
        "summary": activity_summary(customer),
        "timeline": timeline(customer),
        "follow_users": [{
            "userid": r.userid, "name": staff_names.get(r.userid, ""), "remark": r.remark,
            "description": r.description, "added_at": _iso(r.added_at), "add_way": r.add_way, "state": r.state,
            "channel": channel_names.get(r.state) or r.state,
            "status": r.status, "lost_reason": r.lost_reason, "is_me": r.userid == principal.userid,
            "tags": tags_by_rel[r.id],
            "tag_sync": {**sync_states[r.id], "message": sync_message(sync_states[r.id])} if r.id in sync_states
            else None,
        } for r in relations],
        "followups": [followup_dict(f, staff_names) for f in followups],
        "group_chats": [{"chat_id": c, "name": n, "owner_userid": o} for c, n, o in chats],
    }


def _staff_names(corp_id: str, userids: set[str]) -> dict[str, str]:
    if not userids:
        return {}
    rows = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id,
                                                                     Staff.userid.in_(sorted(userids))))
    return {userid: name for userid, name in rows}


def followup_dict(f: FollowUp, staff_names: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": f.id, "userid": f.userid, "name": (staff_names or {}).get(f.userid, ""), "content": f.content,
            "next_at": _iso(f.next_at), "created_at": _iso(f.created_at)}


# ---------------------------------------------------------------- the 360° view: stage, tier, activity, timeline


SUMMARY_DAYS = 30
TIMELINE_PAGE = 20
TIMELINE_MAX = 100
EVENT_LABELS = {"page_view": "浏览页面", "link_click": "打开链接", "form": "提交表单", "order": "下单"}


def stage_info(customer: Customer, now: dt.datetime | None = None) -> dict[str, Any]:
    """The customer's stage and since when (its latest change to that stage); no history → unknown."""
    if not customer.stage:
        return {"name": None, "since": None, "days": None}
    since = db.session.scalar(select(StageChange.at).where(StageChange.customer_id == customer.id,
                                                           StageChange.to_stage == customer.stage)
                              .order_by(StageChange.at.desc(), StageChange.id.desc()).limit(1))
    days = None if since is None else max(0, ((now or utcnow()) - since).days)
    return {"name": customer.stage, "since": _iso(since), "days": days}


def value_tier(customer: Customer) -> dict[str, Any] | None:
    """The customer's value tier (高价值 / 潜力 / …) with the figures it was placed by; None without one."""
    row = customer_tier(customer.corp_id, customer)
    if row is None:
        return None
    return {"name": row.tier, "since": _iso(row.since), "orders": row.frequency, "amount": money(row.monetary),
            "recency_days": row.recency_days, "active_days": row.active_days, "computed_at": _iso(row.computed_at)}


def money(value: Decimal | int | float | str | None) -> str:
    """¥1,280.00 (an amount of yuan as the pages show it)."""
    amount = Decimal(str(value or 0)).quantize(Decimal("0.01"))
    return f"¥{amount:,.2f}"


def activity_summary(customer: Customer, days: int = SUMMARY_DAYS, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the customer did lately: visits, link opens, forms, orders (with their amount), and the
    follow-ups written, in the last `days` days; `text` says it in one line ("近30天：3 次访问，1 笔订单（¥1,280.00）")."""
    since = (now or utcnow()) - dt.timedelta(days=days)
    counts: dict[str, tuple[int, Decimal]] = {}
    for kind, n, amount in db.session.execute(
            select(BehaviorEvent.type, func.count(), func.sum(BehaviorEvent.amount))
            .where(BehaviorEvent.customer_id == customer.id, BehaviorEvent.at >= since).group_by(BehaviorEvent.type)):
        counts[kind] = (int(n), Decimal(str(amount or 0)))
    notes = int(db.session.scalar(select(func.count()).select_from(FollowUp).where(
        FollowUp.customer_id == customer.id, FollowUp.created_at >= since)) or 0)
    visits, clicks, forms = (counts.get(k, (0, 0))[0] for k in ("page_view", "link_click", "form"))
    orders, amount = counts.get("order", (0, Decimal(0)))
    parts = [text for n, text in ((visits, f"{visits} 次访问"), (clicks, f"打开链接 {clicks} 次"),
                                  (forms, f"提交表单 {forms} 次"),
                                  (orders, f"{orders} 笔订单（{money(amount)}）"), (notes, f"{notes} 次跟进")) if n]
    other = sum(n for k, (n, _) in counts.items() if k not in ("page_view", "link_click", "form", "order"))
    if other:
        parts.append(f"其他互动 {other} 次")
    return {"days": days, "visits": visits, "link_clicks": clicks, "forms": forms, "orders": orders,
            "order_amount": money(amount), "followups": notes, "other": other,
            "text": f"近{days}天：" + ("，".join(parts) if parts else "没有互动")}


def _event_detail(event: BehaviorEvent) -> str:
    """One line about a behaviour event, from the properties senders commonly give (never raw JSON)."""
    props = event.properties if isinstance(event.properties, dict) else {}

    def text(*keys: str) -> str:
        for key in keys:
            value = props.get(key)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()[:120]
        return ""

    if event.type == "order":
        what = text("product", "title", "name", "item", "order_id")
        return money(event.amount) + (f" · {what}" if what else "")
    if event.type == "form":
        return text("form_name", "form", "title", "name") or (event.path or "")
    return text("title", "name") or (event.path or text("url"))


def _event_item(event: BehaviorEvent) -> dict[str, Any]:
    return {"kind": "event", "id": f"e{event.id}", "at": _iso(event.at), "type": event.type,
            "title": EVENT_LABELS.get(event.type, f"行为：{event.type}"), "detail": _event_detail(event),
            "amount": money(event.amount) if event.amount is not None else None}


def _followup_item(note: FollowUp, names: dict[str, str]) -> dict[str, Any]:
    return {"kind": "followup", "id": f"f{note.id}", "at": _iso(note.created_at), "type": "followup",
            "title": "跟进记录", "detail": note.content, "userid": note.userid,
            "name": names.get(note.userid, "") or note.userid, "next_at": _iso(note.next_at)}


def _timeline_cursor(at: dt.datetime, kind: str, row_id: int) -> str:
    raw = f"{at.isoformat()}|{kind}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _read_timeline_cursor(cursor: str) -> tuple[dt.datetime, str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, kind, row_id = raw.split("|")
        moment = dt.datetime.fromisoformat(at)
        if moment.tzinfo is None or kind not in ("e", "f"):
            raise ValueError(kind)
        return moment, kind, int(row_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise BadListQuery("bad_cursor", "cursor 无效，请使用上一页返回的 next_cursor") from None


def _before(at_col: Any, id_col: Any, kind: str, cursor: tuple[dt.datetime, str, int] | None) -> list[Any]:
    """Rows strictly after the cursor in the order (time, kind, id) descending."""
    if cursor is None:
        return []
    at, ckind, cid = cursor
    if kind < ckind:
        return [at_col <= at]
    if kind > ckind:
        return [at_col < at]
    return [or_(at_col < at, and_(at_col == at, id_col < cid))]


def timeline(customer: Customer, cursor: str = "", limit: int = TIMELINE_PAGE) -> dict[str, Any]:
    """Follow-ups and behaviour events merged, newest first, a page at a time (keyset on time, kind, id).

    Returns `{"items": [...], "next_cursor": "" | str}`; `BadListQuery` for a cursor not made here.
    """
    limit = max(1, min(limit, TIMELINE_MAX))
    after = _read_timeline_cursor(cursor) if cursor else None
    notes = db.session.scalars(select(FollowUp).where(
        FollowUp.customer_id == customer.id, *_before(FollowUp.created_at, FollowUp.id, "f", after))
        .order_by(FollowUp.created_at.desc(), FollowUp.id.desc()).limit(limit + 1)).all()
    events = db.session.scalars(select(BehaviorEvent).where(
        BehaviorEvent.customer_id == customer.id, *_before(BehaviorEvent.at, BehaviorEvent.id, "e", after))
        .order_by(BehaviorEvent.at.desc(), BehaviorEvent.id.desc()).limit(limit + 1)).all()
    merged = sorted([(n.created_at, "f", n.id, n) for n in notes] + [(e.at, "e", e.id, e) for e in events],
                    key=lambda row: (row[0], row[1], row[2]), reverse=True)
    page = merged[:limit]
    names = _staff_names(customer.corp_id, {n.userid for _, _, _, n in page if isinstance(n, FollowUp)})
    items = [_followup_item(row, names) if isinstance(row, FollowUp) else _event_item(row) for _, _, _, row in page]
    more = len(merged) > limit
    last = page[-1] if page else None
    return {"items": items, "next_cursor": _timeline_cursor(last[0], last[1], last[2]) if more and last else ""}


# ---------------------------------------------------------------- writing


def add_followup(principal: Principal, customer: Customer, content: Any, next_at: Any = None,
                 userid: str | None = None) -> FollowUp:
    """Record a follow-up note by the principal (or, for a token without a userid, by `userid`)."""
    author = principal.userid or userid
    if not author:
        raise UserValueError("请指明记录人（userid）", field="userid")
    if principal.userid is None and not any(r.userid == author for r in customer.relations):
        raise UserValueError(f"成员 {author} 没有跟进此客户", field="userid")
    return write_followup(customer, author, content, parse_next_at(next_at), principal.actor)


def set_stage(principal: Principal, customer: Customer, stage: Any) -> StageChange | None:
    """Move the customer to `stage` (one of the corp's stages, or None to clear); None if unchanged."""
    return change_stage(customer.corp_id, customer, stage, principal.actor,
                        source="api" if principal.via == "token" else "staff")


# ---------------------------------------------------------------- group chats


@dataclass
class ChatView:
    chat: GroupChat
    members: list[dict[str, Any]]


def load_chat(principal: Principal, chat_id: str) -> ChatView:
    """A group chat the principal may see (its owner or a staff member in it is in scope)."""
    chat = db.session.scalar(select(GroupChat).where(GroupChat.corp_id == principal.corp_id,
                                                     GroupChat.chat_id == chat_id)
                             .options(selectinload(GroupChat.members)))
    if chat is None:
        raise CustomerNotFound(chat_id)
    present = [m for m in chat.members if m.left_at is None]
    staff_ids = {chat.owner_userid} | {m.member_id for m in present if m.type == 1}
    if not scope_for(principal).allows_any(staff_ids):
        raise CustomerNotFound(chat_id)
    externals = [m.member_id for m in present if m.type == 2]
    known = set(db.session.scalars(select(Customer.external_userid).where(
        Customer.corp_id == principal.corp_id, Customer.external_userid.in_(externals)))) if externals else set()
    members = [{"member_id": m.member_id, "name": m.group_nickname or m.name, "type": m.type,
                "is_owner": m.member_id == chat.owner_userid, "is_admin": m.is_admin,
                "is_customer": m.member_id in known, "joined_at": m.join_time}
               for m in sorted(present, key=lambda m: (m.member_id != chat.owner_userid, m.type, m.join_time or utcnow()))]
    return ChatView(chat=chat, members=members)


# ---------------------------------------------------------------- the customer list (GET /api/v1/customers)


LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 100
LIST_Q_MAX_CHARS = 100
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,32}")


class BadListQuery(ScrmError):
    """A malformed list parameter (cursor, limit, q): the request is wrong, not its values (→ 400)."""

    status = 400

    def __init__(self, code: str, message: str, field: str = "cursor") -> None:
        super().__init__(message, field=field)
        self.code = code


def encode_cursor(customer_id: int) -> str:
    """The opaque keyset cursor after `customer_id` (base64url of the id, no padding)."""
    return base64.urlsafe_b64encode(str(customer_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The customer id a cursor from `encode_cursor` stands for; `BadListQuery` for anything else."""
    if not _CURSOR.fullmatch(cursor):
        raise BadListQuery("bad_cursor", "cursor 无效，请使用上一页返回的 next_cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise BadListQuery("bad_cursor", "cursor 无效，请使用上一页返回的 next_cursor") from None
    if not raw.isdigit() or len(raw) > 18 or raw.startswith("0") or encode_cursor(int(raw)) != cursor:
        raise BadListQuery("bad_cursor", "cursor 无效，请使用上一页返回的 next_cursor")
    return int(raw)


def parse_limit(value: str | None) -> int:
    """`limit`: an integer from 1 to 100; absent (or empty) → 50."""
    if value is None or value == "":
        return LIST_LIMIT_DEFAULT
    if not value.isdigit() or not value.isascii() or not 1 <= int(value) <= LIST_LIMIT_MAX:
        raise BadListQuery("bad_limit", f"limit 应为 1 到 {LIST_LIMIT_MAX} 之间的整数", "limit")
    return int(value)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _condition(corp_id: str, param: str, tree: dict[str, Any]) -> ColumnElement[bool]:
    try:
        return filter_condition(corp_id, tree)
    except FilterError as exc:  # a value of the query string, not a filter the caller wrote: 422
        message = str(exc).split("：", 1)[-1]
        raise UserValueError(f"{param}：{message}", field=param) from None


def _list_conditions(principal: Principal, scope: Scope, q: str, tags: list[str], stages: list[str],
                     userids: list[str]) -> list[ColumnElement[bool]]:
    """The WHERE clause of the list: visibility first, then each filter (tags, stage, follower via the
    segment compiler, so "has tag T" means the same everywhere); an unknown or deleted tag or stage is a
    `UserValueError` naming the parameter."""
    corp_id = principal.corp_id
    conds: list[ColumnElement[bool]] = [Customer.corp_id == corp_id]
    if principal.role != "admin":  # only admins also see customers whose relations are all lost
        conds.append(scope_condition(corp_id, scope))
    conds += [_condition(corp_id, "tag", {"tag": t}) for t in dict.fromkeys(tags)]
    if stages:
        conds.append(_condition(corp_id, "stage", {"stage": list(dict.fromkeys(stages))}))
    if userids:
        conds.append(_condition(corp_id, "userid", {"followed_by": list(dict.fromkeys(userids))}))
    if q:
        pattern = _like_pattern(q)
        remarks = select(FollowRelation.customer_id).where(FollowRelation.corp_id == corp_id,
                                                          FollowRelation.remark.ilike(pattern, escape="\\"))
        if not scope.all:  # a colleague's remark outside the caller's scope is not searched
            remarks = remarks.where(FollowRelation.userid.in_(sorted(scope.userids)))
        conds.append(or_(Customer.name.ilike(pattern, escape="\\"), Customer.corp_name.ilike(pattern, escape="\\"),
                         Customer.corp_full_name.ilike(pattern, escape="\\"), Customer.id.in_(remarks)))
    return conds


def list_customers(principal: Principal, *, q: str = "", tags: list[str] | None = None,
                   stages: list[str] | None = None, userids: list[str] | None = None, cursor: str = "",
                   limit: int = LIST_LIMIT_DEFAULT) -> dict[str, Any]:
    """One page of the customers the principal may see, newest (highest id) first.

    Filters combine with AND: `q` (substring of name, corp name or a follow relation's remark, case
    insensitive), every tag in `tags` (on an active relation), any stage in `stages`, an active relation
    with one of `userids`. Three queries per page: the customers, their relations, their tags.
    Returns `{"customers": [...], "next_cursor": "" | str}`.
    """
    q = (q or "").strip()
    if len(q) > LIST_Q_MAX_CHARS:
        raise BadListQuery("bad_query", f"q 最多 {LIST_Q_MAX_CHARS} 个字", "q")
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise BadListQuery("bad_limit", f"limit 应为 1 到 {LIST_LIMIT_MAX} 之间的整数", "limit")
    scope = scope_for(principal)
    conds = _list_conditions(principal, scope, q, tags or [], stages or [], userids or [])
    if cursor:
        conds.append(Customer.id < decode_cursor(cursor))
    rows = db.session.execute(
        select(Customer.id, Customer.external_userid, Customer.name, Customer.corp_name, Customer.corp_full_name,
               Customer.stage, Customer.avatar, Customer.created_at)
        .where(*conds).order_by(Customer.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.id for r in rows]
    relations = _page_relations(ids)
    lost = {i for i in ids if not any(status == "active" for _, status, _ in relations[i])}
    tags_of = _page_tags(ids, lost)
    customers = []
    for r in rows:
        shown = [rel for rel in relations[r.id] if r.id in lost or rel[1] == "active"]
        added = min((a for _, _, a in shown if a is not None), default=None) or r.created_at
        customers.append({
            "external_userid": r.external_userid, "name": r.name, "corp_name": r.corp_name or r.corp_full_name,
            "stage": r.stage, "avatar": r.avatar,
            "follow_users": list(dict.fromkeys(u for u, status, _ in shown if status == "active")),
            "tags": tags_of[r.id], "added_at": _iso(added), "lost": r.id in lost,
        })
    return {"customers": customers, "next_cursor": encode_cursor(rows[-1].id) if more else ""}


def _page_relations(ids: list[int]) -> dict[int, list[tuple[str, str, dt.datetime | None]]]:
    """(userid, status, added_at) of every relation of the page's customers, oldest first; one query."""
    relations: dict[int, list[tuple[str, str, dt.datetime | None]]] = {i: [] for i in ids}
    if ids:
        for customer_id, userid, status, added_at in db.session.execute(
                select(FollowRelation.customer_id, FollowRelation.userid, FollowRelation.status,
                       FollowRelation.added_at)
                .where(FollowRelation.customer_id.in_(ids))
                .order_by(FollowRelation.added_at.is_(None), FollowRelation.added_at, FollowRelation.id)):
            relations[customer_id].append((userid, status, added_at))
    return relations


def _page_tags(ids: list[int], lost: set[int]) -> dict[int, list[dict[str, str]]]:
    """The live tags of the page's customers, each once, in catalog order; one query.

    A customer's tags are those on its active relations; a customer in `lost` shows them as they were.
    """
    tags_of: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    if not ids:
        return tags_of
    seen: set[tuple[int, str]] = set()
    for customer_id, status, tag_id, name, group_name in db.session.execute(
            select(TagAssignment.customer_id, FollowRelation.status, Tag.tag_id, Tag.name, TagGroup.name)
            .join(FollowRelation, FollowRelation.id == TagAssignment.relation_id)
            .join(Tag, Tag.id == TagAssignment.tag_pk).join(TagGroup, TagGroup.id == Tag.group_pk)
            .where(TagAssignment.customer_id.in_(ids), Tag.deleted_at.is_(None))
            .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id)):
        if (status != "active" and customer_id not in lost) or (customer_id, tag_id) in seen:
            continue
        seen.add((customer_id, tag_id))
        tags_of[customer_id].append({"tag_id": tag_id, "name": name, "group_name": group_name})
    return tags_of
