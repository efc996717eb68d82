"""Auto-tagging rules: loops stopped and recorded, dry run then backfill, stage and follow-up triggers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm.models import AuditLog, Customer, FollowRelation, Tag, TagAssignment, TagGroup
from crm.service import write_followup
from tests.helpers import TEST_CORP_ID, run_tasks


def _world(db_session: Any, customers: int = 3) -> tuple[dict[str, str], list[FollowRelation]]:
    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etG1", name="意向")
    db_session.add(group)
    db_session.flush()
    tags = {}
    for i, name in enumerate(["潜在客户", "新客户", "高意向"]):
        db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=f"etT{i}", group_pk=group.id, name=name))
        tags[name] = f"etT{i}"
    rels = []
    for i in range(customers):
        c = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm{i}", name=f"客户{i}")
        db_session.add(c)
        db_session.flush()
        rel = FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan", state="web" if i else "expo")
        db_session.add(rel)
        rels.append(rel)
    db_session.flush()
    return tags, rels


def _tags(db_session: Any, rel: FollowRelation) -> set[str]:
    return set(db_session.scalars(select(Tag.name).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                  .where(TagAssignment.relation_id == rel.id)))


def test_a_loop_between_two_rules_is_stopped_and_recorded(db_session: Any) -> None:
    from tagging.rules.service import loops, save_rule
    from tagging.assignments.service import change_relation_tags

    tags, (rel, *_) = _world(db_session)
    a = save_rule(TEST_CORP_ID, "admin", {"name": "A", "trigger": "tag_removed", "trigger_params": {"tag_id": tags["高意向"]},
                                          "actions": [{"add_tags": [tags["高意向"]]}]})
    save_rule(TEST_CORP_ID, "admin", {"name": "B", "trigger": "tag_added", "trigger_params": {"tag_id": tags["高意向"]},
                                      "actions": [{"remove_tags": [tags["高意向"]]}]})
    change_relation_tags(TEST_CORP_ID, rel, [tags["高意向"]], [], "zhangsan", "staff")
    db_session.commit()
    assert loops(TEST_CORP_ID) == []  # the rules wait for the worker
    run_tasks()
    stopped = loops(TEST_CORP_ID)
    assert len(stopped) == 1 and stopped[0].outcome == "loop" and stopped[0].rule_id in stopped[0].chain
    assert db_session.scalar(select(AuditLog).where(AuditLog.action == "rule.loop")) is not None
    assert a.id in stopped[0].chain or stopped[0].rule_id == a.id


def test_dry_run_then_backfill_changes_exactly_what_it_said(db_session: Any) -> None:
    from tagging.bulk.service import start_backfill
    from tagging.rules.service import dry_run, save_rule
    from tagging.bulk.service import run_job
    from wecom.models import OutboxCommand

    tags, rels = _world(db_session, 5)
    change = __import__("tagging.assignments.service", fromlist=["x"]).change_relation_tags
    change(TEST_CORP_ID, rels[1], [tags["新客户"]], [], "zhangsan", "staff")
    rule = save_rule(TEST_CORP_ID, "admin", {"name": "官网来的", "trigger": "customer_added",
                                             "trigger_params": {"state": "web"}, "actions": [{"add_tags": [tags["新客户"]]}]})
    db_session.commit()
    result = dry_run(rule)
    assert (result["matched"], result["would_change"]) == (4, 3) and len(result["sample"]) == 3
    before = db_session.query(OutboxCommand).count()
    job = start_backfill(rule, "admin")
    db_session.commit()
    done = run_job(job.id)
    assert done is not None and (done.status, done.done, done.changed) == ("done", 4, 3)
    assert db_session.query(OutboxCommand).count() == before + 3
    assert _tags(db_session, rels[0]) == set() and all(_tags(db_session, r) == {"新客户"} for r in rels[1:])
    assert dry_run(rule)["would_change"] == 0


def test_followup_and_stage_triggers(db_session: Any) -> None:
    from tagging.rules.service import save_rule
    from tagging.lifecycle.stages import change_stage, stage_names

    tags, (rel, *_) = _world(db_session, 1)
    stage = stage_names(TEST_CORP_ID)[1]
    save_rule(TEST_CORP_ID, "admin", {"name": "跟进即潜在", "trigger": "followup_written",
                                      "actions": [{"add_tags": [tags["潜在客户"]]}]})
    save_rule(TEST_CORP_ID, "admin", {"name": "阶段即新客", "trigger": "stage_changed", "trigger_params": {"to": stage},
                                      "actions": [{"add_tags": [tags["新客户"]]}, {"remove_tags": [tags["潜在客户"]]}]})
    db_session.commit()
    write_followup(db_session.get(Customer, rel.customer_id), "zhangsan", "聊了聊", None, "zhangsan")
    db_session.commit()
    assert _tags(db_session, rel) == set()  # answered before the rule ran
    run_tasks()
    assert _tags(db_session, rel) == {"潜在客户"}
    change_stage(TEST_CORP_ID, db_session.get(Customer, rel.customer_id), stage, "zhangsan")
    db_session.commit()
    run_tasks()
    assert _tags(db_session, rel) == {"新客户"}
