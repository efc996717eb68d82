"""The filter compiler: a filter tree F (DESIGN.md) → one SQL query of customer ids, plus preview and
saved segments. Nothing here loops over customers in Python.

F nodes:

    {"all": [F…]}  {"any": [F…]}  {"not": F}
    {"tag": tag_id}                          at least one ACTIVE follow relation has the tag
    {"wecom_tags": [tag_id…]}                WeCom semantics: OR within a tag group, AND across groups
    {"stage": [name…]}                       null in the list means "no stage set"
    {"followed_by": [userid…]}               an active relation with one of these staff members
    {"added_after": iso} {"added_before": iso}   an active relation added in the range (a date alone is a China date)
    {"no_followup_days": n}                  no follow-up note in the last n days (or never)
    {"state": channel | [channel…]}          an active relation added through this contact-way State
    {"tier": [name…]}                        current value tier (tagging.tiers)
    {"event": {"type", "path_prefix"?, "min_count"?, "within_days"?, "min_amount"?}}

Every customer in a result has at least one active follow relation with a staff member the
principal may see (`identity.web.scope_for`).

Two compilations of the same tree, one meaning: on PostgreSQL, counts, previews and `compile_filter`
read the per-customer `customer_facets` row (`tagging.segments.facets`, kept by triggers), so any filter is one
scan of one narrow table; on SQLite, and for `filter_condition` (a condition over `Customer` that the
customer list and per-customer rule checks combine with their own), every node is a subquery over
the relation tables. The test suite runs on both databases and `test_segments` compares the two.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from sqlalchemy import (ColumnElement, Select, and_, cast, false, func, intersect, literal, not_, or_, select, text,
                        true, union)

from core.db import db, utcnow
from core.errors import UserValueError
from core.time import CHINA
from crm.models import Customer, FollowRelation, FollowUp, Tag, TagAssignment
from crm.service import audit
from identity.service import Principal, Scope
from identity.web import scope_for

from ..lifecycle.models import BehaviorEvent, ValueTier
from ..lifecycle.stages import stage_names
from ..lifecycle.tiers import TIERS
from .facets import enabled as facets_enabled
from .facets import facets
from .models import Segment

log = logging.getLogger("scrm.tagging")

MAX_DEPTH = 12
MAX_NODES = 200
MAX_LIST = 500
SAMPLE_SIZE = 10
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class FilterError(UserValueError):
    """A filter that cannot be compiled; `path` names the bad node (e.g. `all[1].tag`): 400."""

    status = 400
    code = "invalid_filter"

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "filter"
        super().__init__(f"{self.path}：{message}", fields={f"filter.{self.path}" if path else "filter": [message]})


@dataclass
class _Ctx:
    corp_id: str
    now: dt.datetime
    nodes: int = 0
    tags: dict[str, Tag] = field(default_factory=dict)
    stages: list[str] | None = None
    facets: bool = False  # compile over `customer_facets` (PostgreSQL) instead of the relation tables


# ---------------------------------------------------------------- helpers


def _active_relation(corp_id: str, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
    """The customer has an active follow relation matching `conds`.

    Every node is an uncorrelated `customers.id IN (SELECT customer_id …)`: PostgreSQL turns it into a
    semi-join under AND and a hashed subplan under OR / NOT (never a subplan per customer, as a
    correlated EXISTS under OR would be); SQLite builds the set once and probes it.
    """
    return Customer.id.in_(_relation_set(corp_id, *conds))


def _relation_set(corp_id: str, *conds: ColumnElement[bool]) -> Select[tuple[int]]:
    """Ids of customers with an active follow relation matching `conds`."""
    return select(FollowRelation.customer_id).where(
        FollowRelation.corp_id == corp_id, FollowRelation.status == "active", *conds)


def _has_tags(corp_id: str, tag_pks: list[int]) -> ColumnElement[bool]:
    """The customer carries one of `tag_pks` on an active relation.

    Read from the (corp_id, tag_pk, customer_id, relation_id) index alone; "the relation is active"
    is checked against the few relations that are not (a small hashed set), not by joining every
    assignment to its relation.
    """
    return Customer.id.in_(_tag_set(corp_id, tag_pks))


def _tag_set(corp_id: str, tag_pks: list[int]) -> Select[tuple[int]]:
    """Ids of customers carrying one of `tag_pks` on an active relation (see `_has_tags`)."""
    inactive = select(FollowRelation.id).where(FollowRelation.corp_id == corp_id, FollowRelation.status != "active")
    tag_cond = TagAssignment.tag_pk == tag_pks[0] if len(tag_pks) == 1 else TagAssignment.tag_pk.in_(tag_pks)
    return select(TagAssignment.customer_id).where(
        TagAssignment.corp_id == corp_id, tag_cond, TagAssignment.relation_id.not_in(inactive))


F = facets.c


def _overlaps(column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column && ARRAY[values]` (shares an element) for a facets array column."""
    overlap: ColumnElement[bool] = column.op("&&")(cast(literal(values, type_=column.type), column.type))
    return overlap


def _customer(ctx: _Ctx) -> ColumnElement[int]:
    """The customer id column the compiled conditions are about."""
    column: ColumnElement[int] = F.customer_id if ctx.facets else Customer.id.expression
    return column


IMPLY_ACTIVE = {"tag", "wecom_tags", "followed_by", "added_after", "added_before", "state"}


def implies_active_relation(tree: Any) -> bool:
    """True when every customer matching the (valid) F surely has an active relation, so the base
    "still followed" condition can be left out of the query for an unlimited scope."""
    (key, value), = tree.items()
    if key in IMPLY_ACTIVE:
        return True
    if key == "all":
        return any(implies_active_relation(child) for child in value)
    if key == "any":
        return all(implies_active_relation(child) for child in value)
    return False


def _str_list(path: str, value: Any, what: str, *, allow_none: bool = False) -> list[Any]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise FilterError(path, f"应为非空的{what}列表")
    if len(value) > MAX_LIST:
        raise FilterError(path, f"最多 {MAX_LIST} 项")
    for item in value:
        if not (isinstance(item, str) and item.strip()) and not (allow_none and item is None):
            raise FilterError(path, f"应为{what}列表，发现 {item!r}")
    return value


def _positive_int(path: str, value: Any, *, maximum: int = 36500) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise FilterError(path, f"应为 1 到 {maximum} 之间的整数")
    return value


def parse_moment(path: str, value: Any) -> dt.datetime:
    """An ISO date (a China date, its midnight) or datetime (naive = China time) → aware UTC."""
    if not isinstance(value, str) or not value:
        raise FilterError(path, "应为日期，如 2026-01-31")
    try:
        if len(value) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(0, 0), tzinfo=CHINA)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=CHINA)
    except ValueError:
        raise FilterError(path, f"日期格式不对：{value!r}，应为 YYYY-MM-DD") from None
    if not 2000 <= moment.year <= 2100:
        raise FilterError(path, f"日期应在 2000 到 2100 年之间：{value!r}")
    return moment.astimezone(dt.timezone.utc)


def _load_tags(ctx: _Ctx, path: str, tag_ids: list[str]) -> list[Tag]:
    missing = [t for t in tag_ids if t not in ctx.tags]
    if missing:
        for tag in db.session.scalars(select(Tag).where(Tag.corp_id == ctx.corp_id, Tag.tag_id.in_(missing))):
            ctx.tags[tag.tag_id] = tag
    unknown = [t for t in tag_ids if t not in ctx.tags]
    if unknown:
        raise FilterError(path, f"标签不存在：{', '.join(unknown)}")
    deleted = [ctx.tags[t] for t in tag_ids if ctx.tags[t].deleted_at is not None]
    if deleted:
        raise FilterError(path, f"标签已被删除：{', '.join(f'{t.name}（{t.tag_id}）' for t in deleted)}")
    return [ctx.tags[t] for t in tag_ids]


# ---------------------------------------------------------------- nodes


def _node_all(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    if not isinstance(value, list):
        raise FilterError(path, "应为条件列表")
    parts = [_compile(ctx, f"{path}[{i}]", child, depth + 1) for i, child in enumerate(value)]
    return and_(true(), *parts) if parts else true()


def _node_any(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    if not isinstance(value, list) or not value:
        raise FilterError(path, "应为非空的条件列表")
    return or_(false(), *[_compile(ctx, f"{path}[{i}]", child, depth + 1) for i, child in enumerate(value)])


def _node_not(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    return not_(_compile(ctx, path, value, depth + 1))


def _node_tag(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    if not isinstance(value, str) or not value:
        raise FilterError(path, "应为一个标签 id")
    (tag,) = _load_tags(ctx, path, [value])
    if ctx.facets:
        return _overlaps(F.tag_pks, [tag.id])
    return _has_tags(ctx.corp_id, [tag.id])


def _node_wecom_tags(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    tags = _load_tags(ctx, path, list(dict.fromkeys(_str_list(path, value, "标签 id"))))
    if ctx.facets:
        return and_(*[_overlaps(F.tag_pks, pks) for pks in _tags_by_group(tags)])
    return and_(*[_has_tags(ctx.corp_id, pks) for pks in _tags_by_group(tags)])


def _tags_by_group(tags: list[Tag]) -> list[list[int]]:
    """WeCom's tag semantics: the tag pks grouped by tag group (OR within one, AND across them)."""
    by_group: dict[int, list[int]] = {}
    for tag in tags:
        by_group.setdefault(tag.group_pk, []).append(tag.id)
    return [pks for _, pks in sorted(by_group.items())]


def _node_stage(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    names = _str_list(path, value, "阶段", allow_none=True)
    if ctx.stages is None:
        ctx.stages = stage_names(ctx.corp_id)
    unknown = [n for n in names if n is not None and n not in ctx.stages]
    if unknown:
        raise FilterError(path, f"未知的客户阶段：{', '.join(unknown)}")
    given = sorted({n for n in names if n is not None})
    stage = F.stage if ctx.facets else Customer.stage
    conds = [stage.in_(given)] if given else []
    if None in names:
        conds.append(stage.is_(None))
    return or_(*conds)


def _node_followed_by(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    userids = sorted(set(_str_list(path, value, "成员 userid")))
    if ctx.facets:  # a small index lookup of these staff's relations, probed as a hashed set
        return F.customer_id.in_(_relation_set(ctx.corp_id, FollowRelation.userid.in_(userids)))
    return _active_relation(ctx.corp_id, FollowRelation.userid.in_(userids))


def _node_added_after(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    moment = parse_moment(path, value)
    if ctx.facets:  # some active relation was added at or after `moment`: the latest one was
        return F.added_max >= moment
    return _active_relation(ctx.corp_id, FollowRelation.added_at >= moment)


def _node_added_before(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    moment = parse_moment(path, value)
    if ctx.facets:  # some active relation was added before `moment`: the earliest one was
        return F.added_min < moment
    return _active_relation(ctx.corp_id, FollowRelation.added_at < moment)


def _node_no_followup_days(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    since = ctx.now - dt.timedelta(days=_positive_int(path, value))
    if ctx.facets:
        return or_(F.last_followup_at.is_(None), F.last_followup_at < since)
    return Customer.id.not_in(select(FollowUp.customer_id).where(FollowUp.corp_id == ctx.corp_id,
                                                                 FollowUp.created_at >= since))


def _node_state(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    states = sorted(set(_str_list(path, value, "渠道")))
    return _customer(ctx).in_(_relation_set(ctx.corp_id, FollowRelation.state.in_(states)))


def _node_tier(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    names = _str_list(path, value, "客户价值分层")
    unknown = [n for n in names if n not in TIERS]
    if unknown:
        raise FilterError(path, f"未知的客户价值分层：{', '.join(unknown)}（可选：{'、'.join(TIERS)}）")
    return _customer(ctx).in_(select(ValueTier.customer_id).where(ValueTier.corp_id == ctx.corp_id,
                                                                  ValueTier.tier.in_(sorted(set(names)))))


EVENT_KEYS = {"type", "path_prefix", "min_count", "within_days", "min_amount"}


def _node_event(ctx: _Ctx, path: str, value: Any, depth: int) -> ColumnElement[bool]:
    if not isinstance(value, dict):
        raise FilterError(path, "应为对象，如 {\"type\": \"page_view\", \"min_count\": 3, \"within_days\": 3}")
    extra = sorted(set(value) - EVENT_KEYS)
    if extra:
        raise FilterError(path, f"不认识的字段：{', '.join(extra)}")
    kind = value.get("type")
    if not isinstance(kind, str) or not EVENT_TYPE.match(kind):
        raise FilterError(f"{path}.type", "应为事件类型，如 page_view、order")
    conds: list[ColumnElement[bool]] = [BehaviorEvent.corp_id == ctx.corp_id, BehaviorEvent.type == kind]
    if value.get("within_days") is not None:
        days = _positive_int(f"{path}.within_days", value["within_days"])
        conds.append(BehaviorEvent.at >= ctx.now - dt.timedelta(days=days))
    prefix = value.get("path_prefix")
    if prefix is not None:
        if not isinstance(prefix, str) or not prefix or len(prefix) > 500:
            raise FilterError(f"{path}.path_prefix", "应为路径前缀，如 /products/A")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(BehaviorEvent.path.like(escaped + "%", escape="\\"))
    if value.get("min_amount") is not None:
        try:
            amount = Decimal(str(value["min_amount"]))
        except InvalidOperation:
            raise FilterError(f"{path}.min_amount", "应为金额") from None
        conds.append(BehaviorEvent.amount >= amount)
    min_count = _positive_int(f"{path}.min_count", value.get("min_count", 1), maximum=100000)
    if min_count == 1:
        return _customer(ctx).in_(select(BehaviorEvent.customer_id).where(*conds))
    counted = (select(BehaviorEvent.customer_id).where(*conds).group_by(BehaviorEvent.customer_id)
               .having(func.count() >= min_count))
    return _customer(ctx).in_(counted)


NODES: dict[str, Callable[[_Ctx, str, Any, int], ColumnElement[bool]]] = {
    "all": _node_all, "any": _node_any, "not": _node_not, "tag": _node_tag, "wecom_tags": _node_wecom_tags,
    "stage": _node_stage, "followed_by": _node_followed_by, "added_after": _node_added_after,
    "added_before": _node_added_before, "no_followup_days": _node_no_followup_days, "state": _node_state,
    "tier": _node_tier, "event": _node_event,
}


def _compile(ctx: _Ctx, path: str, node: Any, depth: int) -> ColumnElement[bool]:
    ctx.nodes += 1
    if depth > MAX_DEPTH:
        raise FilterError(path, f"条件嵌套太深（最多 {MAX_DEPTH} 层）")
    if ctx.nodes > MAX_NODES:
        raise FilterError(path, f"条件太多（最多 {MAX_NODES} 个）")
    if not isinstance(node, dict) or len(node) != 1:
        raise FilterError(path, "每个条件应为只有一个键的对象，如 {\"tag\": \"et…\"}")
    (key, value), = node.items()
    compiler = NODES.get(key)
    if compiler is None:
        raise FilterError(f"{path}.{key}" if path else key, f"不认识的条件 {key!r}（可用：{', '.join(NODES)}）")
    return compiler(ctx, f"{path}.{key}" if path else key, value, depth)


# ---------------------------------------------------------------- public API


def filter_condition(corp_id: str, tree: Any, *, now: dt.datetime | None = None) -> ColumnElement[bool]:
    """F as a boolean SQL expression over `Customer` (correlated EXISTS/IN subqueries); validates F."""
    return _compile(_Ctx(corp_id=corp_id, now=now or utcnow()), "", tree, 0)


def validate_filter(corp_id: str, tree: Any) -> None:
    """Raise `FilterError` naming the bad node when F cannot be compiled for this corp."""
    filter_condition(corp_id, tree)


def scope_condition(corp_id: str, scope: Scope | None, tree: Any = None) -> ColumnElement[bool]:
    """The customer still has an active follow relation (with a staff member in `scope`, if limited).

    Left out (TRUE) for an unlimited scope when F already implies an active relation.
    """
    if scope is None or scope.all:
        if tree is not None and implies_active_relation(tree):
            return true()
        return _active_relation(corp_id)
    return _active_relation(corp_id, FollowRelation.userid.in_(sorted(scope.userids)))


def _facet_scope(corp_id: str, scope: Scope | None) -> ColumnElement[bool]:
    """The facets row has an active relation (with a staff member in `scope`, if limited)."""
    if scope is None or scope.all:
        return F.followed.is_(True)
    return F.customer_id.in_(_relation_set(corp_id, FollowRelation.userid.in_(sorted(scope.userids))))


def _facet_ids(ctx: _Ctx, tree: Any, scope: Scope | None) -> Select[tuple[int]]:
    """Ids of the customers matching F within `scope`, from `customer_facets` alone."""
    ctx.facets = True
    cond = _compile(ctx, "", tree, 0)
    return select(F.customer_id).where(F.corp_id == ctx.corp_id, _facet_scope(ctx.corp_id, scope), cond)


def compile_filter(corp_id: str, tree: Any, *, scope: Scope | None = None,
                   now: dt.datetime | None = None) -> Select[tuple[int]]:
    """F → `SELECT customers.id …` for the corp: customers with an active relation (in `scope`) matching F.

    Callers may add conditions on `Customer` (an id, an order). Raises `FilterError` (a
    `UserValueError`) naming the bad node.
    """
    ctx = _Ctx(corp_id=corp_id, now=now or utcnow())
    if facets_enabled():
        return select(Customer.id).where(Customer.corp_id == corp_id, Customer.id.in_(_facet_ids(ctx, tree, scope)))
    cond = _compile(ctx, "", tree, 0)
    return select(Customer.id).where(Customer.corp_id == corp_id, scope_condition(corp_id, scope, tree), cond)


def _id_set(ctx: _Ctx, node: Any) -> Select[tuple[int]] | None:
    """F as a set of customer ids built only from relation-level sets (tags, owners, channels, dates),
    combined with INTERSECT / UNION; None when F has a node that needs the customer row (stage, not,
    no follow-up, tier, event). Call after `_compile` validated F and loaded its tags into `ctx`."""
    (key, value), = node.items()
    if key in ("all", "any"):
        found = [_id_set(ctx, child) for child in value]
        parts = [p for p in found if p is not None]
        if not parts or len(parts) != len(found):
            return None
        if len(parts) == 1:
            return parts[0]
        combine = intersect if key == "all" else union
        return select(combine(*parts).subquery().c[0])
    corp_id = ctx.corp_id
    if key == "tag":
        return _tag_set(corp_id, [ctx.tags[value].id])
    if key == "wecom_tags":
        groups = _tags_by_group([ctx.tags[t] for t in dict.fromkeys(_str_list("", value, ""))])
        sets = [_tag_set(corp_id, pks) for pks in groups]
        return sets[0] if len(sets) == 1 else select(intersect(*sets).subquery().c[0])
    if key == "followed_by":
        return _relation_set(corp_id, FollowRelation.userid.in_(sorted(set(_str_list("", value, "")))))
    if key == "state":
        return _relation_set(corp_id, FollowRelation.state.in_(sorted(set(_str_list("", value, "")))))
    if key == "added_after":
        return _relation_set(corp_id, FollowRelation.added_at >= parse_moment("", value))
    if key == "added_before":
        return _relation_set(corp_id, FollowRelation.added_at < parse_moment("", value))
    return None


def _count(corp_id: str, tree: Any, scope: Scope | None) -> int:
    """How many customers match F in `scope`.

    PostgreSQL: one scan of `customer_facets`. SQLite: for an unlimited scope and an F made only of
    relation-level sets, the count is taken from those sets alone (index-only reads of
    tag_assignments / follow_relations), without visiting the customers table; otherwise every
    customer row is checked against the compiled condition.
    """
    ctx = _Ctx(corp_id=corp_id, now=utcnow())
    _tune_session()
    if facets_enabled():
        ids = _facet_ids(ctx, tree, scope).subquery()
        return int(db.session.scalar(select(func.count()).select_from(ids)) or 0)
    cond = _compile(ctx, "", tree, 0)
    if scope is None or scope.all:
        relation_ids = _id_set(ctx, tree)
        if relation_ids is not None:
            return int(db.session.scalar(select(func.count()).select_from(relation_ids.distinct().subquery())) or 0)
    query = select(func.count()).select_from(Customer).where(Customer.corp_id == corp_id,
                                                             scope_condition(corp_id, scope, tree), cond)
    return int(db.session.scalar(query) or 0)


def _tune_session() -> None:
    """PostgreSQL: enough memory in this transaction to hash a few hundred thousand ids (the default 4 MB
    would turn a hashed subplan back into a per-customer one)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))


def count(corp_id: str, tree: Any, scope: Scope | None = None) -> int:
    """How many customers match F within `scope`."""
    return _count(corp_id, tree, scope)


# Preview on facets: first ask for up to this many matching ids in any order. A filter that matches
# fewer is answered by that one scan (count and newest ids together); a wider one stops early, then
# is counted and sampled (the newest, found at once by walking the primary key backwards).
PROBE = 2000


def _facet_preview(corp_id: str, tree: Any, scope: Scope | None, sample_size: int) -> tuple[int, list[int]]:
    ctx = _Ctx(corp_id=corp_id, now=utcnow())
    ids = _facet_ids(ctx, tree, scope)
    _tune_session()
    found = list(db.session.scalars(ids.limit(PROBE + 1)))
    if len(found) <= PROBE:
        return len(found), sorted(found, reverse=True)[:sample_size]
    total = int(db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
    return total, list(db.session.scalars(ids.order_by(F.customer_id.desc()).limit(sample_size)))


def preview(principal: Principal, tree: Any, sample_size: int = SAMPLE_SIZE) -> dict[str, Any]:
    """`{"count": n, "sample": [...]}` of the customers matching F that the principal may see
    (the sample: the most recently created first)."""
    scope = scope_for(principal)
    corp_id = principal.corp_id
    if facets_enabled():
        total, newest = _facet_preview(corp_id, tree, scope, sample_size)
        base: tuple[ColumnElement[bool], ...] = (Customer.id.in_(newest),)
    else:
        total = _count(corp_id, tree, scope)
        base = (Customer.corp_id == corp_id, scope_condition(corp_id, scope, tree), filter_condition(corp_id, tree))
    rows = db.session.execute(
        select(Customer.id, Customer.external_userid, Customer.name, Customer.avatar, Customer.stage,
               Customer.corp_name).where(*base).order_by(Customer.id.desc()).limit(sample_size)).all()
    owners: dict[int, list[str]] = {}
    if rows:
        rel_query = select(FollowRelation.customer_id, FollowRelation.userid).where(
            FollowRelation.customer_id.in_([r.id for r in rows]), FollowRelation.status == "active")
        if not scope.all:
            rel_query = rel_query.where(FollowRelation.userid.in_(sorted(scope.userids)))
        for customer_id, userid in db.session.execute(rel_query.order_by(FollowRelation.id)):
            owners.setdefault(customer_id, []).append(userid)
    sample = [{"external_userid": r.external_userid, "name": r.name, "avatar": r.avatar, "stage": r.stage,
               "corp_name": r.corp_name, "follow_userids": owners.get(r.id, [])} for r in rows]
    return {"count": total, "sample": sample}


# ---------------------------------------------------------------- saved segments


def segment_dict(segment: Segment, size: int | None) -> dict[str, Any]:
    """A saved segment for the API; `count` is None when its filter no longer compiles (a tag was deleted)."""
    return {"id": segment.id, "name": segment.name, "description": segment.description, "filter": segment.filter,
            "count": size, "created_by": segment.created_by, "created_at": segment.created_at.isoformat(),
            "updated_at": segment.updated_at.isoformat()}


def list_segments(corp_id: str) -> list[Segment]:
    return list(db.session.scalars(select(Segment).where(Segment.corp_id == corp_id, Segment.deleted_at.is_(None))
                                   .order_by(Segment.updated_at.desc(), Segment.id.desc())))


def get_segment(corp_id: str, segment_id: int) -> Segment | None:
    row = db.session.get(Segment, segment_id)
    if row is None or row.corp_id != corp_id or row.deleted_at is not None:
        return None
    return row


def segment_size(principal: Principal, segment: Segment) -> int | None:
    """The segment's size for this principal; None when its filter no longer compiles (a deleted tag)."""
    try:
        return count(principal.corp_id, segment.filter, scope_for(principal))
    except FilterError:
        return None


def save_segment(corp_id: str, name: Any, tree: Any, actor: str, *, description: Any = "",
                 segment: Segment | None = None) -> Segment:
    """Create (or update `segment`) after validating the name and F; flushes."""
    if not isinstance(name, str) or not name.strip():
        raise UserValueError("请填写分群名称")
    name = name.strip()
    if len(name) > 64:
        raise UserValueError("分群名称最多 64 个字")
    if not isinstance(description, str) or len(description) > 300:
        raise UserValueError("说明最多 300 个字")
    validate_filter(corp_id, tree)
    clash = db.session.scalar(select(Segment.id).where(Segment.corp_id == corp_id, Segment.name == name))
    if clash is not None and (segment is None or clash != segment.id):
        raise UserValueError(f"已有同名分群：{name}")
    if segment is None:
        segment = Segment(corp_id=corp_id, name=name, filter=tree, description=description.strip(),
                          created_by=actor)
        db.session.add(segment)
        db.session.flush()
        audit(corp_id, actor, "segment.create", "segment", str(segment.id), {"name": name, "filter": tree})
    else:
        segment.name, segment.filter, segment.description = name, tree, description.strip()
        audit(corp_id, actor, "segment.update", "segment", str(segment.id), {"name": name, "filter": tree})
        db.session.flush()
    log.info("tagging.segment.saved id=%s corp=%s", segment.id, corp_id)
    return segment


def delete_segment(segment: Segment, actor: str) -> None:
    segment.deleted_at = utcnow()
    segment.name = f"{segment.name[:40]}#已删除{segment.id}"  # gives the name up for a new segment
    audit(segment.corp_id, actor, "segment.delete", "segment", str(segment.id), {"name": segment.name})
    db.session.flush()
