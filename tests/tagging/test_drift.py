"""Drift report against the emulator: every difference listed, healing applies WeCom's state and says what it healed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm.models import Tag, TagAssignment
from tests.helpers import TEST_CORP_ID
from tests.integration.test_callbacks_e2e import _relation, _tag_ids


def test_drift_lists_differences_and_heal_removes_them(db_session: Any, emu: Any, runner: Any) -> None:
    from crm.handlers import apply_tag_groups, refresh_customer
    from tagging.drift.service import run_report
    from wecom.client import contact_client

    emu.act.add_staff("zhangsan", "张三")
    _, (a, b) = emu.act.corp_tag_group_created("等级", ["A", "B"])
    ext = emu.act.customer_adds_staff("zhangsan", name="客户甲", welcome_code=False)
    emu.act.staff_edits_tags("zhangsan", ext, add=[a])
    apply_tag_groups(TEST_CORP_ID, contact_client().get_corp_tag_list(), complete=True)
    refresh_customer(TEST_CORP_ID, ext)
    db_session.commit()
    clean = run_report(TEST_CORP_ID, contact_client())
    assert clean.counts["differences"] == 0 and clean.counts["relations_checked"] == 1

    # Callbacks missed: a rename in the admin console, a tag edit in the client.
    emu.act.corp_tag_renamed(b, "B级")
    emu.act.staff_edits_tags("zhangsan", ext, add=[b], remove=[a])
    result = runner.invoke(args=["tagging", "drift", "--heal"])
    assert result.exit_code == 0, result.output
    assert "tag_name" in result.output and "relation_tags" in result.output
    db_session.expire_all()
    report = run_report(TEST_CORP_ID, contact_client())
    assert report.counts["differences"] == 0
    assert db_session.scalar(select(Tag.name).where(Tag.tag_id == b)) == "B级"
    assert _tag_ids(db_session, _relation(db_session, "zhangsan", ext)) == {b}
    from tagging.drift.models import DriftReport

    healed = db_session.scalars(select(DriftReport).where(DriftReport.trigger == "cli")).one()
    assert {d["kind"] for d in healed.healed} == {"tag_name", "relation_tags"} and healed.counts["remaining"] == 0
    assert db_session.scalar(select(TagAssignment.id)) is not None
