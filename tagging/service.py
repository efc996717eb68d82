"""Tag changes made in the product (sidebar, API, rules), applied locally at once and sent to WeCom later.

Services flush; the request or job that calls them commits once. The WeCom side of a change is an
outbox command (`mark_tag`) written in the same transaction, sent by the worker after the commit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

from sqlalchemy import select

from crm.models import FollowRelation, Tag, TagAssignment
from crm.service import UserValueError, audit
from extensions import db

if TYPE_CHECKING:
    from wecom.models import OutboxCommand

log = logging.getLogger("scrm.tagging")

MAX_TAGS_PER_CHANGE = 100


def _tags_by_id(corp_id: str, tag_ids: Iterable[str]) -> dict[str, Tag]:
    """The live tags named by `tag_ids`; an unknown or deleted tag is refused with a readable message."""
    wanted = {str(t) for t in tag_ids}
    if not wanted:
        return {}
    found = {t.tag_id: t for t in db.session.scalars(select(Tag).where(Tag.corp_id == corp_id,
                                                                       Tag.tag_id.in_(sorted(wanted))))}
    missing = sorted(wanted - set(found))
    if missing:
        raise UserValueError(f"标签不存在：{', '.join(missing)}")
    deleted = sorted(t.name for t in found.values() if t.deleted_at is not None)
    if deleted:
        raise UserValueError(f"标签已被删除：{', '.join(deleted)}")
    return found


def change_relation_tags(corp_id: str, relation: FollowRelation, add_tag_ids: Iterable[str],
                         remove_tag_ids: Iterable[str], actor: str, source: str) -> "OutboxCommand | None":
    """Add and remove corp tags on one follow relation.

    Applies the change locally at once, writes an audit row and enqueues ONE `mark_tag` command for
    the relation with what actually changed. Returns that command, or None when nothing changed
    (every tag to add was already there and every tag to remove was absent).
    Raises `UserValueError` for unknown or deleted tags, a tag both added and removed, or a lost relation.
    """
    add_ids, remove_ids = [str(t) for t in add_tag_ids], [str(t) for t in remove_tag_ids]
    if set(add_ids) & set(remove_ids):
        raise UserValueError("同一个标签不能同时添加和移除")
    if len(add_ids) + len(remove_ids) > MAX_TAGS_PER_CHANGE:
        raise UserValueError(f"一次最多修改 {MAX_TAGS_PER_CHANGE} 个标签")
    if relation.corp_id != corp_id:
        raise UserValueError("该客户关系不属于本企业")
    if relation.status != "active":
        raise UserValueError("该成员已不再跟进此客户，无法修改标签")
    tags = _tags_by_id(corp_id, add_ids + remove_ids)
    current = {a.tag_pk: a for a in db.session.scalars(
        select(TagAssignment).where(TagAssignment.relation_id == relation.id))}
    added: list[str] = []
    removed: list[str] = []
    for tag_id in dict.fromkeys(add_ids):
        tag = tags[tag_id]
        if tag.id not in current:
            db.session.add(TagAssignment(corp_id=corp_id, relation_id=relation.id, tag_pk=tag.id,
                                         customer_id=relation.customer_id, source=source))
            added.append(tag_id)
    for tag_id in dict.fromkeys(remove_ids):
        assignment = current.get(tags[tag_id].id)
        if assignment is not None:
            db.session.delete(assignment)
            removed.append(tag_id)
    if not added and not removed:
        return None
    from wecom.service import enqueue  # the outbox lives in wecom; imported when first needed

    external_userid = relation.customer.external_userid
    command = enqueue(corp_id, "mark_tag", "mark_tag",
                      {"userid": relation.userid, "external_userid": external_userid,
                       "add_tag": added, "remove_tag": removed},
                      client="contact", relation_id=relation.id)
    audit(corp_id, actor, "tags.change", "relation", str(relation.id),
          {"userid": relation.userid, "external_userid": external_userid, "add": added, "remove": removed,
           "source": source, "command_id": command.id})
    db.session.flush()
    log.info("tagging.change relation=%s add=%s remove=%s command=%s", relation.id, added, removed, command.id)
    return command
