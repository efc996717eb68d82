"""The worker applies a burst of add and edit events together: WeCom is read once per customer,
everything is written set-based, and each event still gets exactly what its own handler would give
(its audit row, its welcome message, its signals). What the batch cannot take is applied alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from core.models import Task
from crm.handlers import apply_customer_events
from crm.models import AuditLog, Customer, FollowRelation, Tag, TagAssignment
from tests.helpers import TEST_CORP_ID
from wecom.crypto import parse_xml
from wecom.emulator.callbacks import event_xml
from wecom.models import InboxEvent, OutboxCommand
from wecom.service import claim_events, process_events, store_event

GET = "/cgi-bin/externalcontact/get"


def _store(change_type: str, userid: str, ext: str, n: int, **extra: str) -> int:
    fields = [("UserID", userid), ("ExternalUserID", ext), *extra.items()]
    plaintext = event_xml(TEST_CORP_ID, 1795000000 + n, "change_external_contact", change_type, fields)
    return store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).id


def _count(db_session: Any, model: Any, *where: Any) -> int:
    return int(db_session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_burst_is_applied_once_with_one_read_per_customer(db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("lisi", "李四")
    _group, (a_tag, _b_tag) = emu.act.corp_tag_group_created("客户等级", ["A类", "B类"])
    exts = [emu.act.customer_adds_staff("zhangsan", name=f"客户{i}", state="expo" if i == 0 else "",
                                        welcome_code=False) for i in range(6)]
    emu.act.customer_adds_staff("lisi", external_userid=exts[0], welcome_code=False)  # two relations
    emu.act.staff_edits_tags("zhangsan", exts[1], add=[a_tag])
    ids = [_store("add_external_contact", "zhangsan", ext, i, State="expo" if i == 0 else "")
           for i, ext in enumerate(exts)]
    ids.append(_store("add_external_contact", "lisi", exts[0], 10))
    ids.append(_store("edit_external_contact", "zhangsan", exts[1], 11))
    ids.append(_store("add_external_contact", "zhangsan", exts[2], 12, WelcomeCode="WCBATCH0001"))
    ids.append(_store("add_external_contact", "zhangsan", "wmNOSUCHCUSTOMER000000000000001", 13))
    db_session.commit()
    calls_before = emu.call_count(GET)

    claimed = claim_events("worker-a", limit=100, lease=60)
    assert sorted(claimed) == sorted(ids)
    outcomes = process_events(claimed, "worker-a")

    assert set(outcomes.values()) == {"done"}
    # one read per known customer, plus the unknown one read by its handler (and before, by the batch)
    assert emu.call_count(GET) - calls_before == len(exts) + 2
    db_session.expire_all()
    assert _count(db_session, InboxEvent, InboxEvent.status == "done") == len(ids)
    audits = {a.detail["inbox_id"]: a for a in db_session.scalars(select(AuditLog).where(AuditLog.actor == "wecom"))}
    assert sorted(audits) == sorted(ids)  # exactly one audit row per event
    assert audits[ids[-1]].action == "customer.unknown"
    assert audits[ids[-2]].detail["welcome_command_id"] is not None
    assert _count(db_session, OutboxCommand, OutboxCommand.kind == "welcome") == 1
    assert _count(db_session, Customer) == len(exts)
    assert _count(db_session, FollowRelation, FollowRelation.status == "active") == len(exts) + 1
    first = db_session.scalar(select(FollowRelation).join(Customer).where(Customer.external_userid == exts[0],
                                                                          FollowRelation.userid == "zhangsan"))
    assert first.state == "expo"
    tagged = db_session.scalars(select(Tag.name).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                .join(Customer, Customer.id == TagAssignment.customer_id)
                                .where(Customer.external_userid == exts[1])).all()
    assert tagged == ["A类"]


def test_the_batch_marks_nothing_done_when_a_claim_was_taken_over(db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    exts = [emu.act.customer_adds_staff("zhangsan", welcome_code=False) for _ in range(3)]
    ids = [_store("add_external_contact", "zhangsan", ext, i) for i, ext in enumerate(exts)]
    db_session.commit()
    claimed = claim_events("worker-a", limit=10, lease=60)
    # worker-a's lease on one row ran out and worker-b finished it meanwhile
    db_session.execute(InboxEvent.__table__.update().where(InboxEvent.id == ids[0])
                       .values(status="done", claimed_by=None))
    db_session.commit()
    outcomes = process_events(claimed, "worker-a")
    assert outcomes[ids[0]] == "skipped" and outcomes[ids[1]] == outcomes[ids[2]] == "done"
    db_session.expire_all()
    audited = [a.detail["inbox_id"] for a in db_session.scalars(select(AuditLog).where(AuditLog.actor == "wecom"))]
    assert sorted(audited) == sorted(ids[1:])  # the taken-over event was not applied a second time


def test_a_failing_batch_falls_back_to_one_event_at_a_time(db_session: Any, emu: Any, monkeypatch: Any) -> None:
    import crm.handlers

    emu.act.add_staff("zhangsan", "张三")
    exts = [emu.act.customer_adds_staff("zhangsan", welcome_code=False) for _ in range(3)]
    ids = [_store("add_external_contact", "zhangsan", ext, i) for i, ext in enumerate(exts)]
    db_session.commit()

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the set-based path")

    monkeypatch.setattr(crm.handlers, "write_customers", broken)
    outcomes = process_events(claim_events("worker-a", limit=10, lease=60), "worker-a")
    assert [outcomes[i] for i in ids] == ["done"] * 3
    db_session.expire_all()
    assert _count(db_session, AuditLog, AuditLog.actor == "wecom") == 3
    assert _count(db_session, FollowRelation, FollowRelation.status == "active") == 3


def test_added_customers_reach_the_rules_once_each(db_session: Any, emu: Any) -> None:
    from tagging.rules.models import TagRule

    emu.act.add_staff("zhangsan", "张三")
    db_session.add(TagRule(corp_id=TEST_CORP_ID, name="新客户", trigger="customer_added", enabled=True, actions=[]))
    db_session.commit()
    exts = [emu.act.customer_adds_staff("zhangsan", welcome_code=False) for _ in range(4)]
    events = [db_session.get(InboxEvent, _store("add_external_contact", "zhangsan", ext, i))
              for i, ext in enumerate(exts)]
    db_session.commit()
    assert apply_customer_events(events) == {e.id for e in events}
    from tagging.rules.service import FIRE_TASK

    assert _count(db_session, Task, Task.kind == FIRE_TASK) == 4


def test_the_sync_calls_only_what_it_needs_and_names_members_afterwards(db_session: Any, emu: Any) -> None:
    from crm.models import Staff
    from crm.sync import FullSync
    from tests.helpers import run_tasks
    from wecom.client import contact_client

    for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
        emu.act.add_staff(userid, name)
        emu.act.customer_adds_staff(userid, welcome_code=False)
    FullSync(contact_client(), TEST_CORP_ID).run()
    assert emu.call_count("/cgi-bin/user/get") == 0  # the sync: follow users, tags, pages (and chats)
    names = dict(db_session.execute(select(Staff.userid, Staff.name)).tuples().all())
    assert names == {"zhangsan": "zhangsan", "lisi": "lisi"}
    run_tasks()  # the task the sync queued
    db_session.expire_all()
    names = dict(db_session.execute(select(Staff.userid, Staff.name)).tuples().all())
    assert names == {"zhangsan": "张三", "lisi": "李四"} and emu.call_count("/cgi-bin/user/get") == 2
