"""The corp tag catalog, edited here and sent to WeCom through the outbox; governance; refusals.

Identity is WeCom's id. A tag or group created here gets a provisional id (`pending:<token>[:<n>]`)
until the worker's `add_corp_tag` is answered; the after-hook then writes WeCom's ids into the same
rows (so nothing is ever two tags). Renames and reorders are `edit_corp_tag`, deletes `del_corp_tag`
with a local tombstone at once. After a rename is answered the object is re-read from WeCom, so the
rename that reached WeCom last wins on both sides (see `tagging.service`'s conflict policy).
A change made in WeCom's admin console arrives as a `change_external_tag` callback (crm.handlers).

Services flush; the caller commits.
"""

from __future__ import annotations

import difflib
import logging
import re
import secrets
import unicodedata
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import func, select

from core.db import db, utcnow
from core.errors import UserValueError
from crm.handlers import apply_tag_groups, tombstone_tags
from crm.models import PROVISIONAL, FollowRelation, Tag, TagAssignment, TagGroup, is_provisional
from crm.service import audit, ensure_corp
from wecom.client import WeComClient, contact_client
from wecom.dispatch import CommandView, Reconciled, register_outbox_hooks, register_reconciler
from wecom.service import enqueue

from ..assignments.service import change_relation_tags, describe_refusal

if TYPE_CHECKING:
    from wecom.models import OutboxCommand

log = logging.getLogger("scrm.tagging.catalog")

MAX_NAME = 30
ADD, EDIT, DELETE = "catalog_add", "catalog_edit", "catalog_del"


def _name(value: Any, what: str = "标签名") -> str:
    name = str(value or "").strip()
    if not name:
        raise UserValueError(f"{what}不能为空")
    if len(name) > MAX_NAME:
        raise UserValueError(f"{what}最多 {MAX_NAME} 个字：{name}")
    return name


def _enqueue(corp_id: str, kind: str, method: str, args: dict[str, Any], key: str | None = None) -> "OutboxCommand":
    return enqueue(corp_id, kind, method, args, dedupe_key=key)


def find_group(corp_id: str, group_id: str) -> TagGroup | None:
    return db.session.scalar(select(TagGroup).where(TagGroup.corp_id == corp_id, TagGroup.group_id == group_id))


def find_tag(corp_id: str, tag_id: str) -> Tag | None:
    return db.session.scalar(select(Tag).where(Tag.corp_id == corp_id, Tag.tag_id == tag_id))


def _live(obj: Tag | TagGroup | None, what: str) -> Any:
    if obj is None or obj.deleted_at is not None:
        raise UserValueError(f"{what}不存在或已删除")
    wecom_id = obj.tag_id if isinstance(obj, Tag) else obj.group_id
    if is_provisional(wecom_id):
        raise UserValueError(f"{what}「{obj.name}」尚未在企业微信中创建完成，请稍后再试")
    return obj


# ---------------------------------------------------------------- reading


def usage_counts(corp_id: str) -> dict[int, int]:
    """Customers (with an active relation carrying the tag) per tag pk."""
    rows = db.session.execute(
        select(TagAssignment.tag_pk, func.count(func.distinct(TagAssignment.customer_id)))
        .join(FollowRelation, FollowRelation.id == TagAssignment.relation_id)
        .where(TagAssignment.corp_id == corp_id, FollowRelation.status == "active")
        .group_by(TagAssignment.tag_pk)).all()
    return {int(pk): int(n) for pk, n in rows}


def tag_dict(tag: Tag, usage: int | None = None) -> dict[str, Any]:
    return {"tag_id": tag.tag_id, "name": tag.name, "order": tag.order, "group_id": tag.group.group_id,
            "group_name": tag.group.name, "deleted": tag.deleted_at is not None,
            "sync": "pending" if is_provisional(tag.tag_id) else "synced",
            **({"usage": usage} if usage is not None else {})}


def list_catalog(corp_id: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
    """Groups (larger `order` first, as in WeCom) with their tags and usage counts."""
    usage = usage_counts(corp_id)
    query = select(TagGroup).where(TagGroup.corp_id == corp_id)
    if not include_deleted:
        query = query.where(TagGroup.deleted_at.is_(None))
    out = []
    for group in db.session.scalars(query.order_by(TagGroup.order.desc(), TagGroup.id)):
        tags = [t for t in sorted(group.tags, key=lambda t: (-t.order, t.id))
                if include_deleted or t.deleted_at is None]
        out.append({"group_id": group.group_id, "group_name": group.name, "order": group.order,
                    "deleted": group.deleted_at is not None,
                    "sync": "pending" if is_provisional(group.group_id) else "synced",
                    "tags": [tag_dict(t, usage.get(t.id, 0)) for t in tags]})
    return out


def unused_tags(corp_id: str) -> list[dict[str, Any]]:
    """Live tags no active relation carries."""
    usage = usage_counts(corp_id)
    tags = db.session.scalars(select(Tag).where(Tag.corp_id == corp_id, Tag.deleted_at.is_(None)).order_by(Tag.id))
    return [tag_dict(t, 0) for t in tags if not usage.get(t.id) and not is_provisional(t.tag_id)]


def normalise(name: str) -> str:
    """A tag name folded for comparison: full-width to half-width, case, spaces and punctuation dropped."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[\s\W_]+", "", folded)


def near_duplicates(corp_id: str, threshold: float = 0.8) -> list[dict[str, Any]]:
    """Pairs of live tags whose names look alike (same folded name, one inside the other, or similar)."""
    usage = usage_counts(corp_id)
    tags = list(db.session.scalars(select(Tag).where(Tag.corp_id == corp_id, Tag.deleted_at.is_(None))
                                   .order_by(Tag.id)))
    folded = [(t, normalise(t.name)) for t in tags if not is_provisional(t.tag_id)]
    pairs = []
    for i, (a, fa) in enumerate(folded):
        for b, fb in folded[i + 1:]:
            if not fa or not fb:
                continue
            if fa == fb:
                why, score = "同名（忽略大小写、空格和标点）", 1.0
            elif min(len(fa), len(fb)) >= 2 and (fa in fb or fb in fa):
                why, score = "名称包含", 0.9
            else:
                score = difflib.SequenceMatcher(None, fa, fb).ratio()
                why = "名称相似"
                if score < threshold:
                    continue
            pairs.append({"a": tag_dict(a, usage.get(a.id, 0)), "b": tag_dict(b, usage.get(b.id, 0)),
                          "reason": why, "score": round(score, 2)})
    return sorted(pairs, key=lambda p: -p["score"])


# ---------------------------------------------------------------- writing


def create_tags(corp_id: str, actor: str, names: list[Any], *, group_id: str | None = None,
                group_name: str | None = None) -> list[Tag]:
    """Create tags in an existing group (`group_id`) or in a new group (`group_name`); one `add_corp_tag`.

    The rows exist at once with provisional ids; WeCom's ids replace them when the command is answered.
    """
    ensure_corp(corp_id)
    clean = list(dict.fromkeys(_name(n) for n in names or []))
    if not clean:
        raise UserValueError("至少要有一个标签（企业微信不能创建空的标签组）")
    token = secrets.token_hex(8)
    now = utcnow()
    if group_id:
        group = _live(find_group(corp_id, group_id), "标签组")
        args: dict[str, Any] = {"group_id": group.group_id}
    else:
        gname = _name(group_name, "标签组名")
        if db.session.scalar(select(TagGroup.id).where(TagGroup.corp_id == corp_id, TagGroup.name == gname,
                                                       TagGroup.deleted_at.is_(None))) is not None:
            raise UserValueError(f"标签组「{gname}」已存在，请在该组中添加标签")
        top = db.session.scalar(select(func.max(TagGroup.order)).where(TagGroup.corp_id == corp_id)) or 0
        group = TagGroup(corp_id=corp_id, group_id=f"{PROVISIONAL}{token}", name=gname, order=int(top) + 1,
                         wecom_created_at=now)
        db.session.add(group)
        db.session.flush()
        args = {"group_name": gname, "order": group.order}
    existing = {t.name for t in group.tags if t.deleted_at is None}
    clash = [n for n in clean if n in existing]
    if clash:
        raise UserValueError(f"标签已存在于该组：{', '.join(clash)}")
    top = max([t.order for t in group.tags] or [0])
    created = []
    for i, name in enumerate(clean):
        tag = Tag(corp_id=corp_id, tag_id=f"{PROVISIONAL}{token}:{i}", group_pk=group.id, name=name,
                  order=top + len(clean) - i, wecom_created_at=now)
        db.session.add(tag)
        created.append(tag)
    args["tags"] = [{"name": t.name, "order": t.order} for t in created]
    command = _enqueue(corp_id, ADD, "add_corp_tag", args, key=f"tagadd:{token}")
    audit(corp_id, actor, "tag.create", "tag_group", group.group_id,
          {"group_name": group.name, "names": clean, "command_id": command.id})
    db.session.flush()
    return created


def rename(corp_id: str, actor: str, wecom_id: str, name: Any) -> Tag | TagGroup:
    """Rename a tag or a group (by WeCom id) here and in WeCom (`edit_corp_tag`)."""
    new = _name(name)
    tag = find_tag(corp_id, wecom_id)
    obj: Tag | TagGroup = _live(tag, "标签") if tag is not None else _live(find_group(corp_id, wecom_id), "标签组")
    if obj.name == new:
        return obj
    if isinstance(obj, Tag):
        siblings = db.session.scalar(select(Tag.id).where(Tag.group_pk == obj.group_pk, Tag.name == new,
                                                          Tag.deleted_at.is_(None), Tag.id != obj.id))
        if siblings is not None:
            raise UserValueError(f"该组中已有标签「{new}」")
    elif db.session.scalar(select(TagGroup.id).where(TagGroup.corp_id == corp_id, TagGroup.name == new,
                                                     TagGroup.deleted_at.is_(None), TagGroup.id != obj.id)):
        raise UserValueError(f"已有标签组「{new}」")
    old, obj.name = obj.name, new
    command = _enqueue(corp_id, EDIT, "edit_corp_tag", {"id": wecom_id, "name": new})
    audit(corp_id, actor, "tag.rename", "tag" if isinstance(obj, Tag) else "tag_group", wecom_id,
          {"from": old, "to": new, "command_id": command.id})
    db.session.flush()
    return obj


def reorder(corp_id: str, actor: str, ordered_ids: list[str], *, group_id: str | None = None) -> int:
    """Put the tags of a group (`group_id`) or the groups themselves in this order, first shown first.

    WeCom sorts larger `order` first, so the first id gets the largest value; one `edit_corp_tag` per
    object whose order changed. Returns how many changed.
    """
    if group_id:
        group = _live(find_group(corp_id, group_id), "标签组")
        objs: dict[str, Any] = {t.tag_id: t for t in group.tags if t.deleted_at is None}
    else:
        objs = {g.group_id: g for g in db.session.scalars(select(TagGroup).where(
            TagGroup.corp_id == corp_id, TagGroup.deleted_at.is_(None)))}
    ids = list(dict.fromkeys(str(i) for i in ordered_ids))
    if set(ids) != set(objs):
        raise UserValueError("排序列表应包含且仅包含该层级的全部标签（或标签组）")
    changed = 0
    for position, wecom_id in enumerate(ids):
        obj, order = objs[wecom_id], len(ids) - position
        if obj.order != order:
            _live(obj, "标签")
            obj.order = order
            _enqueue(corp_id, EDIT, "edit_corp_tag", {"id": wecom_id, "order": order})
            changed += 1
    audit(corp_id, actor, "tag.reorder", "tag_group", group_id or "*", {"order": ids, "changed": changed})
    db.session.flush()
    return changed


def delete(corp_id: str, actor: str, wecom_id: str) -> Tag | TagGroup:
    """Delete a tag or a whole group: a tombstone here at once (assignments dropped, history kept) and
    `del_corp_tag` in WeCom (which drops the tag from every customer there)."""
    tag = find_tag(corp_id, wecom_id)
    now = utcnow()
    if tag is not None:
        obj: Tag | TagGroup = _live(tag, "标签")
        tombstone_tags([tag], now)
        group = tag.group
        if all(t.deleted_at is not None for t in group.tags):  # WeCom drops an emptied group itself
            group.deleted_at = group.deleted_at or now
        args = {"tag_ids": [wecom_id]}
    else:
        obj = _live(find_group(corp_id, wecom_id), "标签组")
        obj.deleted_at = now
        tombstone_tags(list(obj.tags), now)
        args = {"group_ids": [wecom_id]}
    command = _enqueue(corp_id, DELETE, "del_corp_tag", args)
    audit(corp_id, actor, "tag.delete", "tag" if isinstance(obj, Tag) else "tag_group", wecom_id,
          {"name": obj.name, "command_id": command.id})
    db.session.flush()
    return obj


def merge(corp_id: str, actor: str, source_id: str, target_id: str) -> dict[str, int]:
    """Merge tag `source_id` into `target_id`: every relation carrying the source gets the target (one
    `mark_tag` each, through the outbox), then the source is deleted (which removes it everywhere)."""
    if source_id == target_id:
        raise UserValueError("不能把标签合并到它自己")
    source = _live(find_tag(corp_id, source_id), "被合并的标签")
    target = _live(find_tag(corp_id, target_id), "目标标签")
    relations = db.session.scalars(select(FollowRelation).join(TagAssignment, TagAssignment.relation_id
                                                                == FollowRelation.id)
                                   .where(TagAssignment.tag_pk == source.id, FollowRelation.status == "active")
                                   .order_by(FollowRelation.id)).all()
    marked = 0
    for relation in relations:
        # Add only: the delete below removes the source from every relation in WeCom, in any order.
        if change_relation_tags(corp_id, relation, [target_id], [], actor, "merge",
                                detail={"merge_from": source_id}) is not None:
            marked += 1
    delete(corp_id, actor, source_id)
    audit(corp_id, actor, "tag.merge", "tag", source_id,
          {"into": target_id, "source_name": source.name, "target_name": target.name,
           "relations": len(relations), "marked": marked})
    db.session.flush()
    return {"relations": len(relations), "marked": marked}


# ---------------------------------------------------------------- outbox after-hooks


def _reread(corp_id: str, wecom_id: str) -> None:
    """Apply WeCom's current state of one tag or group (tombstone if WeCom no longer has it)."""
    client = contact_client()
    if find_group(corp_id, wecom_id) is not None:
        apply_tag_groups(corp_id, client.get_corp_tag_list(group_ids=[wecom_id]), group_ids=[wecom_id])
    else:
        apply_tag_groups(corp_id, client.get_corp_tag_list(tag_ids=[wecom_id]), tag_ids=[wecom_id])


def _failed(command: "OutboxCommand", action: str, target: str) -> None:
    audit(command.corp_id, "wecom", action, "tag", target,
          {"command_id": command.id, "errcode": command.last_errcode, "error": command.last_error,
           "message": describe_refusal(command.last_errcode, command.last_error), "args": command.args})


def on_add_done(command: "OutboxCommand") -> None:
    """`add_corp_tag` answered: WeCom's ids replace the provisional ones (matched by name)."""
    token = (command.dedupe_key or "").split(":", 1)[-1]
    answer = command.result if isinstance(command.result, dict) else {}
    corp_id = command.corp_id
    provisional = list(db.session.scalars(select(Tag).where(Tag.corp_id == corp_id,
                                                            Tag.tag_id.like(f"{PROVISIONAL}{token}:%"))))
    if not provisional or not answer.get("group_id"):
        log.warning("tagging.catalog.add-unmatched command=%s", command.id)
        return
    group = find_group(corp_id, answer["group_id"])
    mine = provisional[0].group
    if group is None:
        group = mine
        group.group_id = answer["group_id"]
    elif group.id != mine.id and is_provisional(mine.group_id):  # WeCom added them to a group of that name
        for tag in provisional:
            tag.group_pk = group.id
        db.session.flush()
        db.session.delete(mine)
    group.name, group.deleted_at, group.synced_at = answer.get("group_name") or group.name, None, utcnow()
    by_name = {t["name"]: t for t in answer.get("tag") or []}
    for tag in provisional:
        got = by_name.get(tag.name)
        if got is None:
            tag.deleted_at = tag.deleted_at or utcnow()
            continue
        clash = find_tag(corp_id, got["id"])
        if clash is not None and clash.id != tag.id:  # WeCom already had it (and told us by callback)
            tag.deleted_at = tag.deleted_at or utcnow()
            continue
        tag.tag_id, tag.order, tag.deleted_at, tag.synced_at = got["id"], int(got.get("order") or 0), None, utcnow()
    db.session.flush()


def on_add_failed(command: "OutboxCommand") -> None:
    token = (command.dedupe_key or "").split(":", 1)[-1]
    now = utcnow()
    tags = list(db.session.scalars(select(Tag).where(Tag.corp_id == command.corp_id,
                                                     Tag.tag_id.like(f"{PROVISIONAL}{token}:%"))))
    for tag in tags:
        tag.deleted_at = tag.deleted_at or now
    group = find_group(command.corp_id, f"{PROVISIONAL}{token}")
    if group is not None:
        group.deleted_at = group.deleted_at or now
    _failed(command, "tag.create_failed", f"{PROVISIONAL}{token}")


def on_edit_done(command: "OutboxCommand") -> None:
    """`edit_corp_tag` answered: re-read the object, so the last rename WeCom received is what we show."""
    _reread(command.corp_id, str((command.args or {}).get("id") or ""))


def on_edit_failed(command: "OutboxCommand") -> None:
    wecom_id = str((command.args or {}).get("id") or "")
    _reread(command.corp_id, wecom_id)
    _failed(command, "tag.edit_failed", wecom_id)


def on_del_failed(command: "OutboxCommand") -> None:
    if command.last_errcode == 40068:  # WeCom no longer has it: deleted either way
        return
    ids = list((command.args or {}).get("tag_ids") or []) + list((command.args or {}).get("group_ids") or [])
    for wecom_id in ids:
        _reread(command.corp_id, str(wecom_id))
    _failed(command, "tag.delete_failed", ",".join(map(str, ids)))


def reconcile_add(view: CommandView, client: WeComClient) -> Reconciled:
    """An `add_corp_tag` whose answer was lost: WeCom created the tags if their group now holds every name
    (the answer is rebuilt from the catalog); otherwise it is sent again."""
    args = view.args
    wanted = {t["name"] for t in args.get("tags") or []}
    for group in client.get_corp_tag_list():
        same = group.get("group_id") == args.get("group_id") or (
            not args.get("group_id") and group.get("group_name") == args.get("group_name"))
        if same and wanted <= {t.get("name") for t in group.get("tag") or []}:
            return Reconciled("done", result=group)
    return Reconciled("resend")


def register_hooks(app: Flask) -> None:
    register_outbox_hooks(app, ADD, on_done=on_add_done, on_failed=on_add_failed)
    register_reconciler(app, ADD, reconcile_add)
    register_outbox_hooks(app, EDIT, on_done=on_edit_done, on_failed=on_edit_failed)
    register_outbox_hooks(app, DELETE, on_failed=on_del_failed)


def tag_catalog(corp_id: str, *, include_empty: bool = True) -> list[dict[str, Any]]:
    """Live tag groups with their live tags, in WeCom's order (larger `order` first), for pickers."""
    groups = db.session.scalars(select(TagGroup).where(TagGroup.corp_id == corp_id, TagGroup.deleted_at.is_(None))
                                .order_by(TagGroup.order.desc(), TagGroup.id)).all()
    tags = db.session.scalars(select(Tag).where(Tag.corp_id == corp_id, Tag.deleted_at.is_(None))
                              .order_by(Tag.order.desc(), Tag.id)).all()
    by_group: dict[int, list[dict[str, str]]] = {}
    for t in tags:
        by_group.setdefault(t.group_pk, []).append({"tag_id": t.tag_id, "name": t.name})
    return [{"group_id": g.group_id, "name": g.name, "tags": by_group.get(g.id, [])} for g in groups
            if include_empty or by_group.get(g.id)]
