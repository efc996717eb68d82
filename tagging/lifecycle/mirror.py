"""Mirrors: a per-customer value kept here (the lifecycle stage, the value tier) shown in WeCom as one
tag of a dedicated tag group ("客户阶段", "客户价值"), so staff see it in the WeCom client.

`ensure_group` creates the group, or the tags it lacks, through the catalog (`add_corp_tag` via the
outbox). `reconcile` makes every active relation of the customers concerned carry exactly the tag
of their value and no other tag of the group, with one `mark_tag` per relation that differs (through
`change_relation_tags`, so the conflict policy and the audit log apply). It is called for one
customer when their value changes, and for everyone by the periodic job, which also catches up on
customers changed while the group was still being created in WeCom.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from sqlalchemy import Select, and_, case, literal, or_, select

from core.db import db
from crm.models import FollowRelation, Tag, TagAssignment, TagGroup, is_provisional

from ..assignments.service import change_relation_tags
from ..catalog.service import create_tags

log = logging.getLogger("scrm.tagging")

BATCH = 2000  # relations corrected per call at most; the periodic job comes back for the rest


def group_tags(corp_id: str, group_name: str) -> tuple[TagGroup | None, dict[str, Tag]]:
    """The live group named `group_name` and its live tags by name (provisional ones included)."""
    group = db.session.scalar(select(TagGroup).where(TagGroup.corp_id == corp_id, TagGroup.name == group_name,
                                                     TagGroup.deleted_at.is_(None)).order_by(TagGroup.id))
    if group is None:
        return None, {}
    return group, {t.name: t for t in group.tags if t.deleted_at is None}


def ensure_group(corp_id: str, group_name: str, names: Iterable[str], actor: str) -> list[str]:
    """Create the group with `names`, or the names its live tags lack; returns the names created.

    Nothing is created while an earlier creation in this group still waits for WeCom's answer.
    """
    wanted = list(dict.fromkeys(names))
    group, tags = group_tags(corp_id, group_name)
    if group is not None and (is_provisional(group.group_id) or any(is_provisional(t.tag_id) for t in tags.values())):
        return []
    missing = [n for n in wanted if n not in tags]
    if not missing:
        return []
    if group is None:
        create_tags(corp_id, actor, missing, group_name=group_name)
    else:
        create_tags(corp_id, actor, missing, group_id=group.group_id)
    log.info("tagging.mirror.create corp=%s group=%s names=%s", corp_id, group_name, missing)
    return missing


def reconcile(corp_id: str, group_name: str, wanted: Select[Any], actor: str, *,
              customer_ids: list[int] | None = None, limit: int = BATCH) -> int:
    """Correct the active relations whose tags of `group_name` differ from their customer's value.

    `wanted` selects `(customer_id, name)`: the tag name each customer should carry (customers it
    leaves out should carry none of the group). Only tags WeCom has created (not provisional) are
    used. Returns how many relations got a `mark_tag`.
    """
    _, by_name = group_tags(corp_id, group_name)
    live = {name: t for name, t in by_name.items() if not is_provisional(t.tag_id)}
    if not live:
        return 0
    by_pk = {t.id: t for t in live.values()}
    w = wanted.subquery("wanted")
    want_pk = case({name: t.id for name, t in live.items()}, value=w.c.name, else_=literal(None))
    in_scope = [FollowRelation.corp_id == corp_id, FollowRelation.status == "active"]
    if customer_ids is not None:
        in_scope.append(FollowRelation.customer_id.in_(customer_ids))
    lacking = (select(FollowRelation.id).join(w, w.c.customer_id == FollowRelation.customer_id)
               .where(*in_scope, want_pk.is_not(None), ~FollowRelation.id.in_(
                   select(TagAssignment.relation_id).where(TagAssignment.corp_id == corp_id,
                                                           TagAssignment.tag_pk == want_pk))))
    extra = (select(FollowRelation.id).join(TagAssignment, TagAssignment.relation_id == FollowRelation.id)
             .outerjoin(w, w.c.customer_id == FollowRelation.customer_id)
             .where(*in_scope, TagAssignment.tag_pk.in_(list(by_pk)),
                    or_(want_pk.is_(None), and_(want_pk.is_not(None), TagAssignment.tag_pk != want_pk))))
    relation_ids = sorted(set(db.session.scalars(lacking.limit(limit))) | set(db.session.scalars(extra.limit(limit))))
    if not relation_ids:
        return 0
    target = dict(db.session.execute(select(FollowRelation.id, w.c.name).join(
        w, w.c.customer_id == FollowRelation.customer_id).where(FollowRelation.id.in_(relation_ids))).tuples().all())
    sent = 0
    for relation in db.session.scalars(select(FollowRelation).where(FollowRelation.id.in_(relation_ids))
                                       .order_by(FollowRelation.id)):
        tag = live.get(target.get(relation.id) or "")
        present = {a.tag_pk for a in relation.tags if a.tag_pk in by_pk}
        add = [tag.tag_id] if tag is not None and tag.id not in present else []
        remove = [by_pk[pk].tag_id for pk in sorted(present) if tag is None or pk != tag.id]
        if add or remove:
            change_relation_tags(corp_id, relation, add, remove, actor=actor, source="rule",
                                 detail={"mirror": group_name})
            sent += 1
    log.info("tagging.mirror.reconciled corp=%s group=%s relations=%s", corp_id, group_name, sent)
    return sent
