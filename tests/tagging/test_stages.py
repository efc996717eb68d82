"""Lifecycle stages: the default list, admin edits, history with the actor, the sidebar path, the WeCom mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import Base, token


def test_default_list_and_change_history(base: Base, db_session: Any) -> None:
    from crm.models import AuditLog, StageChange
    from tagging.lifecycle import stages

    assert stages.stage_names(TEST_CORP_ID) == ["潜在客户", "意向客户", "成交客户", "忠诚客户", "流失客户"]
    customer = base.customers["c"]
    change = stages.change_stage(TEST_CORP_ID, customer, "意向客户", "zhangsan")
    assert change is not None and (change.from_stage, change.to_stage, change.actor) == (None, "意向客户", "zhangsan")
    assert stages.change_stage(TEST_CORP_ID, customer, "意向客户", "zhangsan") is None  # unchanged: no history row
    stages.change_stage(TEST_CORP_ID, customer, "成交客户", "rule:7", source="rule")
    db_session.commit()
    assert [(h["from"], h["to"], h["actor"]) for h in stages.history(TEST_CORP_ID, customer.id)] == [
        ("意向客户", "成交客户", "rule:7"), (None, "意向客户", "zhangsan")]
    assert db_session.query(StageChange).filter_by(customer_id=customer.id).count() == 2
    assert db_session.query(AuditLog).filter_by(action="stage.set").count() == 2


def test_unknown_stage_is_refused(base: Base, db_session: Any) -> None:
    import pytest

    from core.errors import UserValueError
    from tagging.lifecycle import stages

    with pytest.raises(UserValueError, match="未知的客户阶段"):
        stages.change_stage(TEST_CORP_ID, base.customers["a"], "不存在", "zhangsan")


def test_admin_edits_the_list_and_cannot_drop_a_stage_in_use(base: Base, client: Any, db_session: Any) -> None:
    admin = token(db_session, "admin")
    got = client.get("/api/v1/stages", headers=admin).get_json()
    assert [s["name"] for s in got["stages"]][:2] == ["潜在客户", "意向客户"] and got["mirror"] is False
    # a is in 意向客户, b in 成交客户: dropping 意向客户 is refused with the count
    refused = client.put("/api/v1/stages", json={"stages": ["潜在客户", "成交客户"]}, headers=admin)
    assert refused.status_code == 422 and "意向客户（1 位客户）" in refused.get_json()["error"]["message"]
    saved = client.put("/api/v1/stages", json={"stages": ["线索", "意向客户", "成交客户", {"name": "沉睡", "is_lost": True}]},
                       headers=admin)
    assert saved.status_code == 200
    assert [(s["name"], s["is_lost"]) for s in saved.get_json()["stages"]] == [
        ("线索", False), ("意向客户", False), ("成交客户", False), ("沉睡", True)]
    dup = client.put("/api/v1/stages", json={"stages": ["线索", "线索"]}, headers=admin)
    assert dup.status_code == 422
    marketer = token(db_session, "marketer")
    assert client.put("/api/v1/stages", json={"stages": ["x"]}, headers=marketer).status_code == 403
    # the sidebar's API uses the same list
    staff = token(db_session, "staff", "zhangsan")
    moved = client.put("/api/v1/customers/wm_a/stage", json={"stage": "沉睡"}, headers=staff)
    assert moved.status_code == 200 and moved.get_json()["stage"] == "沉睡"
    assert client.put("/api/v1/customers/wm_a/stage", json={"stage": "潜在客户"}, headers=staff).status_code == 422
    from crm.models import StageChange

    last = db_session.query(StageChange).order_by(StageChange.id.desc()).first()
    assert (last.to_stage, last.actor) == ("沉睡", "token:test-staff-zhangsan")


def test_stages_console_page(base: Base, client: Any, db_session: Any) -> None:
    from tests.tagging.test_segments import sign_in

    csrf = sign_in(client, db_session, "laowang", "admin")
    page = client.get("/console/stages").get_data(as_text=True)
    assert "潜在客户" in page and "客户价值分层" in page
    answer = client.post("/console/stages", data={"action": "stages", "csrf_token": csrf,
                                                   "stages": "新线索\n意向客户\n成交客户\n", "lost_stages": "流失客户",
                                                   "mirror": "on"})
    assert answer.status_code == 302
    from tagging.lifecycle import stages

    assert stages.stage_names(TEST_CORP_ID) == ["新线索", "意向客户", "成交客户", "流失客户"]
    assert stages.mirror_enabled(TEST_CORP_ID)
    # no 客户阶段 group yet: saving with the mirror on asks WeCom to create it, with every stage's tag
    from wecom.models import OutboxCommand

    command = db_session.scalar(select(OutboxCommand).where(OutboxCommand.method == "add_corp_tag"))
    assert command.args["group_name"] == "客户阶段"
    assert [t["name"] for t in command.args["tags"]] == ["新线索", "意向客户", "成交客户", "流失客户"]
    assert "正在企业微信中创建标签组" in client.get("/console/stages").get_data(as_text=True)


def test_mirror_marks_the_stage_tag_on_every_active_relation(base: Base, db_session: Any) -> None:
    """With the mirror on and the group 客户阶段 in the catalog, a stage change enqueues mark_tag per relation."""
    from crm.models import Tag, TagAssignment, TagGroup
    from tagging.lifecycle import stages
    from wecom.models import OutboxCommand

    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etg_stage", name="客户阶段")
    db_session.add(group)
    db_session.flush()
    for i, name in enumerate(["潜在客户", "意向客户", "成交客户"]):
        db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id=f"et_stage_{i}", group_pk=group.id, name=name))
    db_session.commit()
    stages.save_stages(TEST_CORP_ID, [s.as_dict() for s in stages.list_stages(TEST_CORP_ID)], "admin", mirror=True)
    customer = base.customers["b"]  # zhangsan + lisi, both active
    stages.change_stage(TEST_CORP_ID, customer, "意向客户", "zhangsan")
    db_session.commit()
    commands = db_session.query(OutboxCommand).filter_by(kind="mark_tag").order_by(OutboxCommand.id).all()
    assert sorted(c.args["userid"] for c in commands) == ["lisi", "zhangsan"]
    assert all(c.args["add_tag"] == ["et_stage_1"] and c.args["remove_tag"] == [] for c in commands)
    stages.change_stage(TEST_CORP_ID, customer, "成交客户", "zhangsan")
    db_session.commit()
    latest = db_session.query(OutboxCommand).order_by(OutboxCommand.id.desc()).limit(2).all()
    assert all(c.args["add_tag"] == ["et_stage_2"] and c.args["remove_tag"] == ["et_stage_1"] for c in latest)
    stage_pks = {t.id for t in db_session.query(Tag).filter(Tag.group_pk == group.id)}
    held = db_session.query(TagAssignment).filter(TagAssignment.customer_id == customer.id,
                                                  TagAssignment.tag_pk.in_(stage_pks)).all()
    assert len(held) == 2 and {a.tag.name for a in held} == {"成交客户"}
    stages.change_stage(TEST_CORP_ID, customer, "忠诚客户", "zhangsan")  # no tag for it: the old one goes
    db_session.commit()
    assert db_session.query(TagAssignment).filter(TagAssignment.customer_id == customer.id,
                                                  TagAssignment.tag_pk.in_(stage_pks)).count() == 0


def test_mirror_off_sends_nothing(base: Base, db_session: Any) -> None:
    from tagging.lifecycle import stages
    from wecom.models import OutboxCommand

    stages.change_stage(TEST_CORP_ID, base.customers["a"], "成交客户", "zhangsan")
    db_session.commit()
    assert db_session.query(OutboxCommand).count() == 0
