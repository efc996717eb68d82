"""Catalog governance: usage counts, unused and near-duplicate tags, merge (reassign, then delete)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm.models import Customer, FollowRelation, Tag, TagAssignment, TagGroup
from tests.helpers import TEST_CORP_ID


def _catalog(db_session: Any) -> list[FollowRelation]:
    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etG", name="行业")
    db_session.add(group)
    db_session.flush()
    for tid, name in (("etA", "教育"), ("etB", "教育 "), ("etC", "ＩＴ"), ("etD", "it"), ("etE", "金融")):
        db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=tid, group_pk=group.id, name=name))
    db_session.flush()
    rels = []
    for i, tids in enumerate((["etA"], ["etB"], ["etA", "etB"])):
        c = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm{i}", name=f"客户{i}")
        db_session.add(c)
        db_session.flush()
        rel = FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan")
        db_session.add(rel)
        db_session.flush()
        for tid in tids:
            pk = db_session.scalar(select(Tag.id).where(Tag.tag_id == tid))
            db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=rel.id, tag_pk=pk, customer_id=c.id))
        rels.append(rel)
    db_session.commit()
    return rels


def test_usage_unused_and_near_duplicates(db_session: Any) -> None:
    from tagging.catalog.service import list_catalog, near_duplicates, unused_tags

    _catalog(db_session)
    usage = {t["tag_id"]: t["usage"] for g in list_catalog(TEST_CORP_ID) for t in g["tags"]}
    assert usage == {"etA": 2, "etB": 2, "etC": 0, "etD": 0, "etE": 0}
    assert {t["tag_id"] for t in unused_tags(TEST_CORP_ID)} == {"etC", "etD", "etE"}
    pairs = {frozenset((p["a"]["tag_id"], p["b"]["tag_id"])) for p in near_duplicates(TEST_CORP_ID)}
    assert frozenset(("etA", "etB")) in pairs and frozenset(("etC", "etD")) in pairs
    assert not any("etE" in p for p in pairs)


def test_merge_reassigns_then_deletes_through_the_outbox(db_session: Any) -> None:
    from tagging.catalog.service import merge
    from wecom.models import OutboxCommand

    rels = _catalog(db_session)
    result = merge(TEST_CORP_ID, "admin", "etB", "etA")
    db_session.commit()
    assert result == {"relations": 2, "marked": 1}  # rels[2] already had A
    commands = db_session.scalars(select(OutboxCommand).order_by(OutboxCommand.id)).all()
    assert [c.method for c in commands] == ["mark_tag", "del_corp_tag"]
    assert commands[0].args["add_tag"] == ["etA"] and commands[1].args == {"tag_ids": ["etB"]}
    b = db_session.scalar(select(Tag).where(Tag.tag_id == "etB"))
    assert b.deleted_at is not None and b.name == "教育 "  # tombstone
    for rel in rels:
        assert set(db_session.scalars(select(Tag.tag_id).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                      .where(TagAssignment.relation_id == rel.id))) == {"etA"}
