"""The event handlers, one event at a time: stored in the inbox as the callback would, applied by
the worker's `process_event`, WeCom being the emulator over HTTP (no callback delivery here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from crm.models import AuditLog, Customer, FollowRelation, Tag, TagAssignment, TagGroup, WelcomeMessage
from crm.worker import Worker, drain
from tests.helpers import TEST_CORP_ID
from wecom.crypto import parse_xml
from wecom.emulator.callbacks import event_xml
from wecom.models import InboxEvent, OutboxCommand
from wecom.service import enqueue, replay_events, store_event

CONTACT = "change_external_contact"


def deliver(event: str, change_type: str, fields: list[tuple[str, Any]], create_time: int | None = None) -> int:
    """Store one event exactly as the callback would (CreateTime now by default); its inbox id."""
    import time

    plaintext = event_xml(TEST_CORP_ID, create_time or int(time.time()), event, change_type, fields)
    return store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).id


def apply(app: Any) -> None:
    drain(app, worker=Worker(app, retry_base=0.01))


def replayed(app: Any, db_session: Any, *ids: int) -> None:
    replay_events(TEST_CORP_ID, ids=list(ids))
    db_session.commit()
    apply(app)


def _relation(db_session: Any, userid: str, ext: str) -> FollowRelation | None:
    return db_session.scalar(select(FollowRelation).join(Customer).where(Customer.external_userid == ext,
                                                                         FollowRelation.userid == userid))


def _snapshot(db_session: Any) -> dict[str, Any]:
    db_session.expire_all()
    rels = db_session.execute(select(FollowRelation.userid, FollowRelation.status, FollowRelation.lost_reason,
                                     FollowRelation.remark, FollowRelation.state)).all()
    tags = db_session.execute(select(TagAssignment.relation_id, TagAssignment.tag_pk)).all()
    commands = db_session.execute(select(OutboxCommand.kind, OutboxCommand.dedupe_key)).all()
    return {"relations": sorted(rels), "tags": sorted(tags), "commands": sorted(commands, key=str),
            "customers": db_session.scalar(select(func.count()).select_from(Customer))}


def _status(db_session: Any, event_id: int) -> InboxEvent:
    db_session.expire_all()
    return db_session.get(InboxEvent, event_id)


# ---------------------------------------------------------------- customers


def test_add_is_idempotent_and_sends_one_welcome(app: Any, db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ext = emu.act.customer_adds_staff("zhangsan", name="李雷", state="官网")
    code = next(c for c, v in emu.state.welcome_codes.items() if v["external_userid"] == ext)
    event_id = deliver(CONTACT, "add_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext),
                                                          ("State", "官网"), ("WelcomeCode", code)])
    apply(app)
    first = _snapshot(db_session)
    rel = _relation(db_session, "zhangsan", ext)
    assert rel is not None and rel.status == "active" and rel.state == "官网"
    assert len(emu.state.welcome_messages) == 1
    # the default welcome text was seeded for the corp, and can now be edited
    assert db_session.scalar(select(WelcomeMessage.text).where(WelcomeMessage.state == "")) == \
        "您好，我是{staff_name}，很高兴为您服务！"

    replayed(app, db_session, event_id)
    assert _snapshot(db_session) == first  # no second welcome command, same rows
    assert _status(db_session, event_id).status == "done"
    assert len(emu.state.welcome_messages) == 1


def test_half_added_contact_is_recorded_and_welcomed(app: Any, db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ext = emu.act.customer_adds_staff("zhangsan", name="半添加", half=True)
    code = next(c for c, v in emu.state.welcome_codes.items() if v["external_userid"] == ext)
    event_id = deliver(CONTACT, "add_half_external_contact",
                       [("UserID", "zhangsan"), ("ExternalUserID", ext), ("State", ""), ("WelcomeCode", code)])
    apply(app)
    assert _status(db_session, event_id).status == "done"
    # WeCom does not list a half-added relation: nothing invented, but the event is on record
    assert db_session.scalar(select(AuditLog.action).where(AuditLog.target_id == ext)) in (
        "customer.unknown", "customer.half_added")


def test_a_customer_wecom_no_longer_knows_is_handled(app: Any, db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ids = [deliver(CONTACT, ct, [("UserID", "zhangsan"), ("ExternalUserID", "wmNOBODY0000000000000000000AAA")])
           for ct in ("add_external_contact", "edit_external_contact", "del_external_contact", "del_follow_user")]
    apply(app)
    assert [_status(db_session, i).status for i in ids] == ["done"] * 4
    assert db_session.scalar(select(func.count()).select_from(Customer)) == 0
    assert db_session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "customer.unknown")) == 4


def test_edit_merges_with_a_pending_local_tag_change(app: Any, db_session: Any, emu: Any) -> None:
    from crm.sync import protected_relations

    emu.act.add_staff("zhangsan", "张三")
    _, (mine, theirs) = emu.act.corp_tag_group_created("意向", ["我加的", "客户端加的"])
    ext = emu.act.customer_adds_staff("zhangsan", name="合并", welcome_code=False)
    deliver(CONTACT, "add_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext)])
    apply(app)
    rel = _relation(db_session, "zhangsan", ext)
    # a local change waiting in the outbox (not sent yet: its next attempt is later)
    tag_pk = db_session.scalar(select(Tag.id).where(Tag.tag_id == mine))
    if tag_pk is None:  # the catalog is learned on demand; make sure "mine" is known locally
        from crm.handlers import apply_tag_groups
        from wecom.client import contact_client

        apply_tag_groups(TEST_CORP_ID, contact_client().get_corp_tag_list(), complete=True)
        tag_pk = db_session.scalar(select(Tag.id).where(Tag.tag_id == mine))
    db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=rel.id, tag_pk=tag_pk,
                                 customer_id=rel.customer_id, source="staff"))
    import datetime as dt

    from core.db import utcnow

    command = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag",
                      {"userid": "zhangsan", "external_userid": ext, "add_tag": [mine]}, relation_id=rel.id)
    command.next_attempt_at = utcnow() + dt.timedelta(hours=1)
    db_session.commit()
    assert protected_relations(TEST_CORP_ID, [rel.id]) == {rel.id}  # the full sync leaves it alone

    emu.act.staff_edits_tags("zhangsan", ext, add=[theirs])  # in the client, meanwhile
    emu.act.staff_edits_remark("zhangsan", ext, remark="新备注")
    deliver(CONTACT, "edit_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext)])
    apply(app)
    db_session.expire_all()
    tags = set(db_session.scalars(select(Tag.tag_id).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                  .where(TagAssignment.relation_id == rel.id)))
    assert tags == {mine, theirs}  # WeCom's edit applied, the pending local one not undone
    assert _relation(db_session, "zhangsan", ext).remark == "新备注"


def test_delete_by_transfer_is_not_a_loss(app: Any, db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("lisi", "李四")
    ext = emu.act.customer_adds_staff("zhangsan", name="转接", welcome_code=False)
    emu.act.customer_adds_staff("lisi", name="转接", external_userid=ext, welcome_code=False)
    deliver(CONTACT, "add_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext)])
    apply(app)
    emu.act.staff_deletes_customer("zhangsan", ext)  # what the transfer does on WeCom's side
    event_id = deliver(CONTACT, "del_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext),
                                                         ("Source", "DELETE_BY_TRANSFER")])
    fail_id = deliver(CONTACT, "transfer_fail", [("FailReason", "customer_refused"), ("UserID", "lisi"),
                                                 ("ExternalUserID", ext)])
    apply(app)
    rel = _relation(db_session, "zhangsan", ext)
    assert (rel.status, rel.lost_reason) == ("lost", "transferred")
    assert _relation(db_session, "lisi", ext).status == "active"
    detail = db_session.scalar(select(AuditLog.detail).where(AuditLog.action == "transfer.failed"))
    assert detail["fail_reason"] == "customer_refused" and detail["inbox_id"] == fail_id
    first = _snapshot(db_session)
    replayed(app, db_session, event_id, fail_id)
    assert _snapshot(db_session) == first


def test_a_stale_delete_does_not_undo_a_newer_add(app: Any, db_session: Any, emu: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ext = emu.act.customer_adds_staff("zhangsan", name="回来了", welcome_code=False)
    # WeCom says the relation exists now; an old delete arrives late
    deliver(CONTACT, "del_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", ext)])
    apply(app)
    assert _relation(db_session, "zhangsan", ext).status == "active"


# ---------------------------------------------------------------- corp tags


def test_tag_events_reread_the_catalog(app: Any, db_session: Any, emu: Any) -> None:
    group_id, (a, b) = emu.act.corp_tag_group_created("等级", ["甲", "乙"])
    second, (c,) = emu.act.corp_tag_group_created("来源", ["展会"])
    deliver("change_external_tag", "create", [("Id", group_id), ("TagType", "tag_group")])
    deliver("change_external_tag", "create", [("Id", c), ("TagType", "tag")])
    apply(app)
    assert set(db_session.scalars(select(Tag.tag_id))) == {a, b, c}
    emu.act.corp_tags_reordered()  # every group: empty Id
    deliver("change_external_tag", "shuffle", [("Id", "")])
    emu.act.corp_tag_deleted(a)
    deliver("change_external_tag", "delete", [("Id", a), ("TagType", "tag")])
    apply(app)
    db_session.expire_all()
    tags = {t.tag_id: t for t in db_session.scalars(select(Tag))}
    assert tags[a].deleted_at is not None
    assert tags[b].order == emu.state.tags[b].order and tags[c].order == emu.state.tags[c].order
    groups = {g.group_id: g.order for g in db_session.scalars(select(TagGroup))}
    assert groups == {group_id: emu.state.tag_groups[group_id].order, second: emu.state.tag_groups[second].order}


def test_a_transient_wecom_error_is_retried_then_applied(app: Any, db_session: Any, emu: Any) -> None:
    group_id, _ = emu.act.corp_tag_group_created("等级", ["甲"])
    emu.faults.add(path="/cgi-bin/externalcontact/get_corp_tag_list", errcode=-1, times=4)  # one whole client call
    event_id = deliver("change_external_tag", "create", [("Id", group_id), ("TagType", "tag_group")])
    worker = Worker(app, retry_base=0.01)
    assert worker.run_once() == 1
    row = _status(db_session, event_id)
    assert row.status == "pending" and row.attempts == 1 and "errcode=-1" in row.last_error
    import time

    time.sleep(0.05)
    drain(app, worker=worker)
    row = _status(db_session, event_id)
    assert row.status == "done" and row.attempts == 2
    assert db_session.scalar(select(func.count()).select_from(TagGroup)) == 1
