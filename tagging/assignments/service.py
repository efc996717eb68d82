"""Tag changes made in the product (sidebar, API, rules, bulk edits), applied locally at once and sent to WeCom later.

Conflict policy (two-way tag sync)
----------------------------------
- **Assignments.** A change made here is applied locally at once and sent as ONE `mark_tag` per follow
  relation through the outbox. Until WeCom answers that command, the local change wins: an
  `edit_external_contact` callback (a change made in the WeCom client) that arrives meanwhile is merged
  for every tag the pending command does not touch, and the touched tags keep their local value; the
  full sync leaves the whole relation alone while a command on it is pending. Once the command is done,
  WeCom is the truth again and the next callback or sync is applied as is.
- **Refusals.** If WeCom refuses the command (40068 the tag was deleted, 84061 the relationship is
  gone, …), the local change is rolled back by re-reading WeCom's state of that customer (and, for
  40068, of the tags named in the command, which get tombstones). The user sees the failure: the
  relation's sync state (`relation_sync_state`: failed, errcode, a message in Chinese) and an audit row
  `tags.change_failed` next to the original `tags.change`.
- **Catalog renames.** Identity is WeCom's tag id, so a rename is always the same tag, never two. When a
  tag is renamed here and in WeCom's admin console at about the same time, the rename that reaches
  WeCom LAST wins on both sides. Ours is ordered at the moment the worker sends `edit_corp_tag` (not
  when the user clicked); the admin's at the moment the admin saved it. After our command is answered
  the tag is re-read from WeCom (not copied from the command), and an admin-console rename always
  arrives as a callback that re-reads the tag, so both orders end with the same name on both sides.
- **Catalog deletes** leave tombstones (`deleted_at`): the row stays, so history and audit rows still read.

Services flush; the request or job that calls them commits once. The WeCom side of a change is an
outbox command written in the same transaction, sent by the worker after the commit.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from sqlalchemy import select

from core.db import db
from core.errors import UserValueError
from core.signals import TagsChanged, cascade, tags_changed
from crm.handlers import apply_tag_groups
from crm.models import AuditLog, FollowRelation, Tag, TagAssignment, is_provisional
from crm.service import audit
from wecom.client import contact_client
from wecom.models import OutboxCommand
from wecom.service import enqueue

log = logging.getLogger("scrm.tagging.assignments")

MAX_TAGS_PER_CHANGE = 100

# What the user is told when WeCom refuses a tag change (wecom-api.md §4.6, §10).
REFUSALS = {
    40068: "标签已在企业微信中被删除",
    84061: "成员与该客户已不是联系人关系",
    40096: "客户在企业微信中已不存在",
    48002: "应用没有客户联系权限",
    "expired": "超过时限未能同步",
}


def describe_refusal(errcode: int | None, error: str | None = None) -> str:
    """A short Chinese sentence for a failed outbox command."""
    if errcode in REFUSALS:
        return REFUSALS[errcode]
    if error == "expired":
        return REFUSALS["expired"]
    return f"企业微信拒绝了此操作（{errcode or error or '未知错误'}）"


def tags_by_id(corp_id: str, tag_ids: Iterable[str]) -> dict[str, Tag]:
    """The live tags named by `tag_ids`; an unknown, deleted or not yet created tag is refused."""
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
    waiting = sorted(t.name for t in found.values() if is_provisional(t.tag_id))
    if waiting:
        raise UserValueError(f"标签尚未在企业微信中创建完成，请稍后再试：{', '.join(waiting)}")
    return found


def change_relation_tags(corp_id: str, relation: FollowRelation, add_tag_ids: Iterable[str],
                         remove_tag_ids: Iterable[str], actor: str, source: str, *,
                         detail: dict[str, Any] | None = None) -> OutboxCommand | None:
    """Add and remove corp tags on one follow relation.

    Applies the change locally at once, writes an audit row (with `detail`, e.g. the rule and its
    chain) and enqueues ONE `mark_tag` command for the relation with what actually changed, then announces
    the change (`core.signals.tags_changed`, with the rule cascade it belongs to). Returns that command, or
    None when nothing changed.
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
    tags = tags_by_id(corp_id, add_ids + remove_ids)
    current = {a.tag_pk: a for a in db.session.scalars(
        select(TagAssignment).where(TagAssignment.relation_id == relation.id))}
    added: list[str] = []
    removed: list[str] = []
    for tag_id in dict.fromkeys(add_ids):
        tag = tags[tag_id]
        if tag.id not in current:
            db.session.add(TagAssignment(corp_id=corp_id, relation_id=relation.id, tag_pk=tag.id,
                                         customer_id=relation.customer_id, source=source[:16]))
            added.append(tag_id)
    for tag_id in dict.fromkeys(remove_ids):
        assignment = current.get(tags[tag_id].id)
        if assignment is not None:
            db.session.delete(assignment)
            removed.append(tag_id)
    if not added and not removed:
        return None
    external_userid = relation.customer.external_userid
    command = enqueue(corp_id, "mark_tag", "mark_tag",
                      {"userid": relation.userid, "external_userid": external_userid,
                       "add_tag": added, "remove_tag": removed}, relation_id=relation.id)
    audit(corp_id, actor, "tags.change", "relation", str(relation.id),
          {"userid": relation.userid, "external_userid": external_userid, "add": added, "remove": removed,
           "source": source, "command_id": command.id, **(detail or {})})
    db.session.flush()
    log.info("tagging.change relation=%s add=%s remove=%s command=%s", relation.id, added, removed, command.id)
    tags_changed.send(TagsChanged(corp_id, relation.customer_id, relation.id, tuple(added), tuple(removed), actor,
                                  chain=cascade.get()))
    return command


# ---------------------------------------------------------------- refusals and sync state


def on_mark_tag_failed(command: OutboxCommand) -> None:
    """Outbox after-hook: WeCom refused a `mark_tag`. crm's hook already re-read the customer (the
    local change is rolled back); here a tag WeCom says does not exist (40068) is re-read and gets its
    tombstone, and the refusal is recorded for the user."""
    args = command.args or {}
    tag_ids = [str(t) for t in list(args.get("add_tag") or []) + list(args.get("remove_tag") or [])]
    if command.last_errcode == 40068 and tag_ids:
        apply_tag_groups(command.corp_id, contact_client().get_corp_tag_list(tag_ids=tag_ids), tag_ids=tag_ids)
    relation = db.session.get(FollowRelation, command.relation_id) if command.relation_id else None
    if relation is not None and relation.status != "active":
        # WeCom no longer lists the relation, so crm's re-read did not touch its tags: undo the command
        # here, leaving the lost relation's tags as they were before the refused change.
        _undo(command.corp_id, relation, list(args.get("add_tag") or []), list(args.get("remove_tag") or []))
    audit(command.corp_id, "wecom", "tags.change_failed", "relation", str(command.relation_id or ""),
          {"command_id": command.id, "errcode": command.last_errcode, "error": command.last_error,
           "message": describe_refusal(command.last_errcode, command.last_error),
           "userid": args.get("userid"), "external_userid": args.get("external_userid"),
           "add": list(args.get("add_tag") or []), "remove": list(args.get("remove_tag") or [])})


def _undo(corp_id: str, relation: FollowRelation, added: list[str], removed: list[str]) -> None:
    pks = dict(db.session.execute(select(Tag.tag_id, Tag.id).where(Tag.corp_id == corp_id,
                                                                   Tag.tag_id.in_(added + removed))).tuples().all())
    current = {a.tag_pk: a for a in db.session.scalars(
        select(TagAssignment).where(TagAssignment.relation_id == relation.id))}
    for tag_id in added:
        if pks.get(tag_id) in current:
            db.session.delete(current[pks[tag_id]])
    for tag_id in removed:
        if tag_id in pks and pks[tag_id] not in current:
            db.session.add(TagAssignment(corp_id=corp_id, relation_id=relation.id, tag_pk=pks[tag_id],
                                         customer_id=relation.customer_id, source="wecom"))
    db.session.flush()


def relation_sync_state(corp_id: str, relation_id: int) -> dict[str, Any]:
    """How the relation's latest tag change stands: synced (nothing or done), pending, or failed with why."""
    cmd = db.session.scalar(select(OutboxCommand).where(
        OutboxCommand.corp_id == corp_id, OutboxCommand.relation_id == relation_id,
        OutboxCommand.kind == "mark_tag").order_by(OutboxCommand.id.desc()).limit(1))
    if cmd is None or cmd.status == "done":
        return {"status": "synced", "command_id": cmd.id if cmd is not None else None}
    if cmd.status == "pending":
        return {"status": "pending", "command_id": cmd.id, "attempts": cmd.attempts}
    return {"status": "failed", "command_id": cmd.id, "errcode": cmd.last_errcode,
            "message": describe_refusal(cmd.last_errcode, cmd.last_error)}


def failed_changes(corp_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest refused tag changes, for the console and the API."""
    rows = db.session.scalars(select(AuditLog).where(AuditLog.corp_id == corp_id,
                                                     AuditLog.action == "tags.change_failed")
                              .order_by(AuditLog.id.desc()).limit(limit))
    return [{"at": r.at.isoformat(), "relation_id": r.target_id, **r.detail} for r in rows]
