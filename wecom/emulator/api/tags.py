"""Corp tags: the catalog and marking relations (wecom-api.md §4.6)."""

from __future__ import annotations

from typing import Any

from ..state import State, Tag, TagGroup
from .base import (ApiError, Ctx, active_relation,
                   need_customer, as_list, need_member, contact)


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
    tag_ids = as_list(ctx.body.get("tag_id"), "tag_id")
    group_ids = as_list(ctx.body.get("group_id"), "group_id")
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
    wanted = as_list(body.get("tag"), "tag")
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
    tag_ids = as_list(ctx.body.get("tag_id"), "tag_id")
    group_ids = as_list(ctx.body.get("group_id"), "group_id")
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
    member = need_member(ctx, body.get("userid"))
    customer = need_customer(ctx, body.get("external_userid"))
    add = as_list(body.get("add_tag"), "add_tag")
    remove = as_list(body.get("remove_tag"), "remove_tag")
    if not add and not remove:
        raise ApiError(41017, "add_tag and remove_tag are both empty")
    rel = active_relation(ctx, member.userid, customer.external_userid)
    for tid in add + remove:
        if tid not in st.tags or st.tags[tid].deleted:
            raise ApiError(40068, f"invalid tagid: {tid}")
    tags = [t for t in st.live_tags(rel) if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags]
    rel.tags = tuple(tags)
    return {}
