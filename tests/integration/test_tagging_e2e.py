"""Tagging both ways against the emulator over real HTTP: catalog edits here and in the admin console,
assignments here and in the WeCom client, refusals (40068, 84061), channel and event rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests
from sqlalchemy import select

from crm.models import AuditLog, Customer, FollowRelation, Tag, TagGroup
from tests.helpers import TEST_CORP_ID
from tests.integration.test_callbacks_e2e import _relation, _tag_ids, settle, wired, worker  # noqa: F401
from wecom.models import OutboxCommand

MARK_TAG = "/cgi-bin/externalcontact/mark_tag"


def _marks(emu: Any, ext: str) -> list[dict[str, Any]]:
    return [c[3] for c in list(emu.calls) if c[1] == MARK_TAG and isinstance(c[3], dict)
            and c[3].get("external_userid") == ext]


def _catalog_ready(db_session: Any, emu: Any) -> None:
    from crm.handlers import apply_tag_groups
    from wecom.client import contact_client

    apply_tag_groups(TEST_CORP_ID, contact_client().get_corp_tag_list(), complete=True)
    db_session.commit()


# ---------------------------------------------------------------- catalog both ways


def test_catalog_created_renamed_deleted_here_reaches_wecom(db_session: Any, wired: Any) -> None:
    from tagging.catalog import service as catalog

    emu = wired
    tags = catalog.create_tags(TEST_CORP_ID, "admin1", ["展会", "官网"], group_name="来源")
    db_session.commit()
    assert all(catalog.is_provisional(t.tag_id) for t in tags)
    settle(db_session, emu)
    db_session.expire_all()
    local = {t.name: t.tag_id for t in db_session.scalars(select(Tag).where(Tag.deleted_at.is_(None)))}
    remote = {t.name: t.id for t in emu.state.tags.values() if not t.deleted}
    assert local == remote and not any(catalog.is_provisional(i) for i in local.values())
    group = db_session.scalar(select(TagGroup).where(TagGroup.name == "来源"))
    assert group.group_id in emu.state.tag_groups

    catalog.rename(TEST_CORP_ID, "admin1", local["展会"], "线下展会")
    catalog.delete(TEST_CORP_ID, "admin1", local["官网"])
    db_session.commit()
    settle(db_session, emu)
    db_session.expire_all()
    assert emu.state.tags[local["展会"]].name == "线下展会"
    assert emu.state.tags[local["官网"]].deleted
    gone = db_session.scalar(select(Tag).where(Tag.tag_id == local["官网"]))
    assert gone.deleted_at is not None and gone.name == "官网"  # a tombstone: history still reads
    assert db_session.scalar(select(Tag.name).where(Tag.tag_id == local["展会"])) == "线下展会"


def test_rename_here_and_in_admin_console_last_to_reach_wecom_wins(db_session: Any, emu: Any, app: Any) -> None:
    """Conflict policy: our rename is ordered when the worker sends it; the admin's when it is saved."""
    from crm.worker import drain
    from tagging.catalog import service as catalog

    _, (tag_id,) = emu.act.corp_tag_group_created("意向", ["高意向"])
    _catalog_ready(db_session, emu)
    # 1. The admin renames first, we send afterwards: ours reached WeCom last and wins on both sides.
    catalog.rename(TEST_CORP_ID, "admin1", tag_id, "高意向客户")
    db_session.commit()
    emu.act.corp_tag_renamed(tag_id, "重点客户")
    drain(app)
    db_session.expire_all()
    assert emu.state.tags[tag_id].name == "高意向客户"
    assert db_session.scalar(select(Tag.name).where(Tag.tag_id == tag_id)) == "高意向客户"
    assert db_session.scalar(select(TagGroup.id)) is not None and len(db_session.scalars(select(Tag)).all()) == 1

    # 2. Ours is sent first, then the admin renames (its callback arrives after): the admin's wins.
    from wecom.emulator import Emulator  # noqa: F401  (the same emulator, now delivering callbacks)

    catalog.rename(TEST_CORP_ID, "admin1", tag_id, "A级")
    db_session.commit()
    drain(app)
    emu.act.corp_tag_renamed(tag_id, "甲级")
    from crm.handlers import on_tag_changed
    from wecom.models import InboxEvent

    event = InboxEvent(corp_id=TEST_CORP_ID, payload_hash="x" * 64, event="change_external_tag",
                       change_type="update", payload="", data={"Id": tag_id, "TagType": "tag"})
    on_tag_changed(event)  # the callback's handler, as the worker runs it
    db_session.commit()
    assert emu.state.tags[tag_id].name == "甲级"
    assert db_session.scalar(select(Tag.name).where(Tag.tag_id == tag_id)) == "甲级"
    assert len(db_session.scalars(select(Tag)).all()) == 1  # never two tags


# ---------------------------------------------------------------- assignments both ways


def test_local_change_survives_a_client_edit_and_both_merge(db_session: Any, emu: Any, app: Any) -> None:
    from crm.handlers import on_edit_external_contact, refresh_customer
    from crm.worker import drain
    from tagging.assignments.service import change_relation_tags, relation_sync_state
    from wecom.models import InboxEvent

    emu.act.add_staff("zhangsan", "张三")
    _, (a, b, c) = emu.act.corp_tag_group_created("等级", ["A", "B", "C"])
    ext = emu.act.customer_adds_staff("zhangsan", name="客户甲", welcome_code=False)
    _catalog_ready(db_session, emu)
    refresh_customer(TEST_CORP_ID, ext)
    db_session.commit()
    rel = _relation(db_session, "zhangsan", ext)
    change_relation_tags(TEST_CORP_ID, rel, [a], [], "zhangsan", "staff")  # pending, not sent yet
    db_session.commit()
    emu.act.staff_edits_tags("zhangsan", ext, add=[b])  # meanwhile in the WeCom client
    on_edit_external_contact(InboxEvent(corp_id=TEST_CORP_ID, payload_hash="y" * 64,
                                        event="change_external_contact", change_type="edit_external_contact",
                                        payload="", data={"UserID": "zhangsan", "ExternalUserID": ext}))
    db_session.commit()
    assert _tag_ids(db_session, rel) == {a, b}  # the pending local A kept, the client's B merged
    assert relation_sync_state(TEST_CORP_ID, rel.id)["status"] == "pending"
    drain(app)
    assert emu.state.relation_tags("zhangsan", ext) == {a, b}
    assert relation_sync_state(TEST_CORP_ID, rel.id)["status"] == "synced"
    assert c not in _tag_ids(db_session, rel)


def test_refusals_roll_back_and_are_shown(db_session: Any, emu: Any, app: Any) -> None:
    from crm.handlers import refresh_customer
    from crm.worker import drain
    from tagging.assignments.service import change_relation_tags, failed_changes, relation_sync_state

    emu.act.add_staff("zhangsan", "张三")
    _, (a, b) = emu.act.corp_tag_group_created("兴趣", ["篮球", "足球"])
    kept = emu.act.customer_adds_staff("zhangsan", name="留下的", welcome_code=False)
    left = emu.act.customer_adds_staff("zhangsan", name="离开的", welcome_code=False)
    _catalog_ready(db_session, emu)
    refresh_customer(TEST_CORP_ID, kept)
    refresh_customer(TEST_CORP_ID, left)
    db_session.commit()
    emu.act.corp_tag_deleted(b)  # deleted in the admin console; its callback has not been applied
    emu.act.staff_deletes_customer("zhangsan", left)  # the relation is gone in WeCom (84061)
    r1, r2 = _relation(db_session, "zhangsan", kept), _relation(db_session, "zhangsan", left)
    change_relation_tags(TEST_CORP_ID, r1, [b], [], "zhangsan", "staff")
    change_relation_tags(TEST_CORP_ID, r2, [a], [], "zhangsan", "staff")
    db_session.commit()
    drain(app)
    db_session.expire_all()
    s1, s2 = relation_sync_state(TEST_CORP_ID, r1.id), relation_sync_state(TEST_CORP_ID, r2.id)
    assert (s1["status"], s1["errcode"]) == ("failed", 40068) and "删除" in s1["message"]
    assert (s2["status"], s2["errcode"]) == ("failed", 84061) and "联系人" in s2["message"]
    assert _tag_ids(db_session, r1) == set() and _tag_ids(db_session, r2) == set()  # rolled back
    assert db_session.scalar(select(Tag.deleted_at).where(Tag.tag_id == b)) is not None  # tombstoned
    assert _relation(db_session, "zhangsan", left).status == "lost"
    assert {f["errcode"] for f in failed_changes(TEST_CORP_ID)} == {40068, 84061}


# ---------------------------------------------------------------- rules


def test_channel_rule_tags_a_new_customer_in_wecom_within_seconds(db_session: Any, wired: Any) -> None:
    from tagging.rules.service import save_rule

    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    _, (expo, web) = emu.act.corp_tag_group_created("来源", ["展会", "官网"])
    _catalog_ready(db_session, emu)
    save_rule(TEST_CORP_ID, "admin1", {"name": "展会来源", "trigger": "customer_added",
                                        "trigger_params": {"state": "expo2026"}, "actions": [{"add_tags": [expo]}]})
    db_session.commit()
    ext = emu.act.customer_adds_staff("zhangsan", name="展会客户", state="expo2026", welcome_code=False)
    other = emu.act.customer_adds_staff("zhangsan", name="别的客户", welcome_code=False)
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", ext) == {expo}
    assert _marks(emu, ext) and not _marks(emu, other)
    assert _tag_ids(db_session, _relation(db_session, "zhangsan", ext)) == {expo}
    row = db_session.scalar(select(AuditLog).where(AuditLog.action == "tags.change"))
    assert row.actor.startswith("rule:") and row.detail["rule_name"] == "展会来源"


def test_event_threshold_rule_tags_once_and_a_repeated_batch_changes_nothing(db_session: Any, wired: Any,
                                                                              live_server: Any) -> None:
    from identity.service import create_api_token
    from tagging.rules.service import save_rule

    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    _, (hot,) = emu.act.corp_tag_group_created("意向", ["高意向"])
    ext = emu.act.customer_adds_staff("zhangsan", name="看产品的", welcome_code=False)
    settle(db_session, emu)
    _catalog_ready(db_session, emu)
    save_rule(TEST_CORP_ID, "admin1", {
        "name": "三天看三次A", "trigger": "event",
        "condition": {"event": {"type": "page_view", "path_prefix": "/products/A", "min_count": 3, "within_days": 3}},
        "actions": [{"add_tags": [hot]}]})
    _, secret = create_api_token(TEST_CORP_ID, "site", "marketer")
    db_session.commit()
    now = dt.datetime.now(dt.timezone.utc)
    batch = [{"id": f"pv-{i}", "external_userid": ext, "type": "page_view", "at": (now - dt.timedelta(hours=i)).isoformat(),
              "properties": {"url": f"https://shop.example/products/A?i={i}"}} for i in range(3)]

    def post(items: list[dict[str, Any]]) -> dict[str, Any]:
        r = requests.post(f"{live_server.url}/api/v1/events", json=items, timeout=10,
                          headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200, r.text
        return r.json()

    assert post(batch[:2])["stored"] == 2
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", ext) == set()  # below the threshold
    assert post(batch)["stored"] == 1
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", ext) == {hot}
    marks = len(_marks(emu, ext))
    assert post(batch)["duplicates"] == 3
    settle(db_session, emu)
    assert len(_marks(emu, ext)) == marks == 1
    assert db_session.query(OutboxCommand).filter(OutboxCommand.kind == "mark_tag").count() == 1
    assert db_session.scalar(select(Customer.id).where(Customer.external_userid == ext)) is not None
    assert db_session.scalar(select(FollowRelation.status)) == "active"


# ---------------------------------------------------------------- stage and tier mirrors


def _group_in_wecom(emu: Any, name: str) -> dict[str, str]:
    """The emulator's live tags of the group `name`, by tag name."""
    groups = [g for g in emu.state.tag_groups.values() if g.name == name and not g.deleted]
    assert len(groups) == 1, [g.name for g in emu.state.tag_groups.values()]
    return {t.name: t.id for t in emu.state.tags.values() if t.group_id == groups[0].group_id and not t.deleted}


def test_stage_and_tier_mirrors_create_their_groups_and_tag_customers_in_wecom(db_session: Any, wired: Any) -> None:
    from tagging.lifecycle import stages, tiers
    from tagging.lifecycle.events import store_events
    from tagging.lifecycle.jobs import tag_mirrors

    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    early = emu.act.customer_adds_staff("zhangsan", name="早来的", welcome_code=False)
    later = emu.act.customer_adds_staff("zhangsan", name="后来的", welcome_code=False)
    settle(db_session, emu)
    first = db_session.scalar(select(Customer).where(Customer.external_userid == early))
    stages.change_stage(TEST_CORP_ID, first, "意向客户", "zhangsan")  # before the mirror exists
    db_session.commit()

    # Turning the mirror on creates the group 客户阶段 in WeCom, one tag per stage.
    stages.save_stages(TEST_CORP_ID, [s.as_dict() for s in stages.list_stages(TEST_CORP_ID)], "admin1", mirror=True)
    db_session.commit()
    settle(db_session, emu)
    in_wecom = _group_in_wecom(emu, "客户阶段")
    assert sorted(in_wecom) == sorted(stages.stage_names(TEST_CORP_ID))
    # the customer staged before the group existed is caught up by the periodic job
    assert tag_mirrors()["stages"] == 1
    db_session.commit()  # a scheduled job is one unit of work: `core.jobs.run_job` commits it
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", early) == {in_wecom["意向客户"]}
    # a change now is mirrored at once: the old stage tag goes, the new one comes
    db_session.expire_all()
    first = db_session.get(Customer, first.id)
    stages.change_stage(TEST_CORP_ID, first, "成交客户", "zhangsan")
    db_session.commit()
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", early) == {in_wecom["成交客户"]}

    # Value tiers: the first computation creates 客户价值; its tags reach the customers.
    now = dt.datetime.now(dt.timezone.utc)
    store_events(TEST_CORP_ID, [{"id": f"o{i}", "external_userid": later, "type": "order",
                                 "at": (now - dt.timedelta(days=i)).isoformat(), "properties": {"amount": 800}}
                                for i in range(2)], "token:shop")
    assert tiers.compute_tiers(TEST_CORP_ID)["tiers"]["高价值"] == 1
    db_session.commit()
    settle(db_session, emu)
    value_tags = _group_in_wecom(emu, "客户价值")
    assert sorted(value_tags) == sorted(tiers.TIERS)
    assert tag_mirrors()["tiers"] == 1
    db_session.commit()
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", later) == {value_tags["高价值"]}
    assert tag_mirrors() == {"stages": 0, "tiers": 0}  # nothing left to correct


# ---------------------------------------------------------------- rules run in the worker, not in the request


def test_a_sidebar_tag_edit_answers_before_its_rules_run_and_the_rules_tag_reaches_wecom_once(
        db_session: Any, wired: Any, client: Any) -> None:
    from core.models import Task
    from tagging.rules.service import save_rule
    from tests.sidebar.conftest import oauth_sign_in

    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    _, (vip, follow_up) = emu.act.corp_tag_group_created("意向", ["VIP", "需回访"])
    ext = emu.act.customer_adds_staff("zhangsan", name="看产品的", welcome_code=False)
    settle(db_session, emu)
    _catalog_ready(db_session, emu)
    save_rule(TEST_CORP_ID, "admin1", {"name": "VIP 需回访", "trigger": "tag_added",
                                       "trigger_params": {"tag_id": vip}, "actions": [{"add_tags": [follow_up]}]})
    db_session.commit()
    oauth_sign_in(client, emu, "zhangsan")
    with client.session_transaction() as sess:
        csrf = sess["csrf"]
    answer = client.post(f"/api/v1/customers/{ext}/tags", json={"add": [vip]}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 202
    assert [t["tag_id"] for t in answer.get_json()["tags"]] == [vip]  # the rule had not run when we answered
    tasks = db_session.query(Task).filter(Task.kind == "rules.fire").all()
    assert len(tasks) == 1 and tasks[0].payload["trigger"] == "tag_added"
    settle(db_session, emu)
    assert emu.state.relation_tags("zhangsan", ext) == {vip, follow_up}
    assert [m.get("add_tag") for m in _marks(emu, ext)] == [[vip], [follow_up]]  # the rule's tag, once
    assert _tag_ids(db_session, _relation(db_session, "zhangsan", ext)) == {vip, follow_up}
