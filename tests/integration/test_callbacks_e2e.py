"""Callbacks end to end: the emulator's simulated actions send real encrypted callbacks to the app
over HTTP, the worker applies them (re-reading WeCom = the emulator) and the bot answers through
the outbox; faults, duplicates, out-of-order delivery and two competing workers included."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import func, select

from crm.models import (AuditLog, Customer, FollowRelation, GroupChat, GroupChatMember, Staff, Tag, TagAssignment, TagGroup, WelcomeMessage)
from crm.worker import Worker
from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from wecom.crypto import CallbackCrypto
from wecom.models import InboxEvent, OutboxCommand
from core.models import Task
from core.queue import set_wake_hook
from wecom.service import enqueue

MARK_TAG = "/cgi-bin/externalcontact/mark_tag"
WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"


def _start(app: Any, **kwargs: Any) -> Worker:
    worker = Worker(app, poll_interval=0.2, retry_base=0.05, lease=30, **kwargs)
    worker.start_thread()
    return worker


def _stop(*workers: Worker) -> None:
    for w in workers:
        w.stop()
    for w in workers:
        assert w.thread is not None
        w.thread.join(timeout=10)


@pytest.fixture()
def worker(app: Any, emu: Any) -> Iterator[Worker]:
    """The real worker loop in a thread, woken by the callback like the embedded default."""
    w = _start(app)
    set_wake_hook(app, w.wake)
    yield w
    set_wake_hook(app, None)
    _stop(w)


@pytest.fixture()
def wired(emu: Any, live_server: Any, worker: Worker) -> Any:
    emu.callback_url = live_server.url + "/wecom/callback"
    return emu


def _count(db_session: Any, model: Any, *where: Any) -> int:
    return int(db_session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def settle(db_session: Any, emu: Any, timeout: float = 15.0) -> None:
    """Every callback delivered, every event applied, every task run, every command sent or given up."""
    assert emu.wait_idle(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db_session.rollback()
        if not _count(db_session, InboxEvent, InboxEvent.status == "pending") and \
                not _count(db_session, Task, Task.status == "pending") and \
                not _count(db_session, OutboxCommand, OutboxCommand.status == "pending"):
            return
        time.sleep(0.02)
    raise AssertionError("the worker did not settle")


def _relation(db_session: Any, userid: str, ext: str) -> FollowRelation:
    rel = db_session.scalar(select(FollowRelation).join(Customer).where(Customer.external_userid == ext,
                                                                         FollowRelation.userid == userid))
    assert rel is not None
    return rel


def _tag_ids(db_session: Any, rel: FollowRelation) -> set[str]:
    return set(db_session.scalars(select(Tag.tag_id).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                  .where(TagAssignment.relation_id == rel.id)))


def _applied_once(db_session: Any) -> None:
    """Every stored event is done and wrote exactly one audit row."""
    events = db_session.scalars(select(InboxEvent)).all()
    assert events and all(e.status == "done" for e in events), [(e.id, e.status, e.last_error) for e in events]
    audits = [a.detail.get("inbox_id") for a in db_session.scalars(select(AuditLog).where(AuditLog.actor == "wecom"))]
    assert sorted(a for a in audits if a is not None) == sorted(e.id for e in events)


# ---------------------------------------------------------------- the customer's life


def test_customer_added_with_channel_gets_the_channel_welcome(db_session: Any, wired: Any) -> None:
    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    db_session.add(WelcomeMessage(corp_id=TEST_CORP_ID, state="expo2026", text="欢迎光临展台！我是{staff_name}。"))
    db_session.commit()
    ext = emu.act.customer_adds_staff("zhangsan", name="李雷", state="expo2026")
    other = emu.act.customer_adds_staff("zhangsan", name="韩梅梅")  # no channel: the default text
    settle(db_session, emu)

    rel = _relation(db_session, "zhangsan", ext)
    assert rel.status == "active" and rel.state == "expo2026"
    assert db_session.scalar(select(Customer.name).where(Customer.external_userid == ext)) == "李雷"
    sent = {m["external_userid"]: m["text"] for m in emu.state.welcome_messages}
    assert sent[ext] == {"content": "欢迎光临展台！我是张三。"} or sent[ext] == "欢迎光临展台！我是张三。"
    assert "很高兴为您服务" in str(sent[other])  # the seeded default
    commands = db_session.scalars(select(OutboxCommand).where(OutboxCommand.kind == "welcome")).all()
    assert len(commands) == 2 and {c.status for c in commands} == {"done"}
    assert all(c.not_after is not None for c in commands)
    _applied_once(db_session)


def test_tags_edited_in_the_client_end_in_the_same_local_tags(db_session: Any, wired: Any) -> None:
    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    _, (a, b, c) = emu.act.corp_tag_group_created("客户等级", ["A类", "B类", "C类"])
    ext = emu.act.customer_adds_staff("zhangsan", name="客户甲", welcome_code=False)
    emu.act.staff_edits_tags("zhangsan", ext, add=[a, b])
    emu.act.staff_edits_tags("zhangsan", ext, add=[c], remove=[a])
    emu.act.staff_edits_remark("zhangsan", ext, remark="老客户")
    settle(db_session, emu)
    rel = _relation(db_session, "zhangsan", ext)
    assert _tag_ids(db_session, rel) == emu.state.relation_tags("zhangsan", ext) == {b, c}
    assert rel.remark == "老客户"
    _applied_once(db_session)


def test_customer_deleting_staff_notifies_staff_and_manager(db_session: Any, wired: Any) -> None:
    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("laowang", "老王")
    ext = emu.act.customer_adds_staff("zhangsan", name="王小二", welcome_code=False)
    settle(db_session, emu)
    staff = db_session.scalar(select(Staff).where(Staff.userid == "zhangsan"))
    staff.manager_userid = "laowang"
    db_session.commit()

    emu.act.customer_deletes_staff("zhangsan", ext)
    settle(db_session, emu)
    rel = _relation(db_session, "zhangsan", ext)
    assert rel.status == "lost" and rel.lost_reason == "del_follow_user" and rel.lost_at is not None
    by_user = {tuple(m["touser"]): m for m in emu.state.messages}
    link = f"/sidebar/customer/{ext}"
    assert set(by_user) == {("zhangsan",), ("laowang",)}
    assert "客户「王小二」已将您删除" in str(by_user[("zhangsan",)]) and link in str(by_user[("zhangsan",)])
    assert "张三" in str(by_user[("laowang",)]) and link in str(by_user[("laowang",)])
    _applied_once(db_session)


def test_staff_deleting_customer_and_a_transfer_are_told_apart(db_session: Any, wired: Any, app: Any) -> None:
    emu = wired
    for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
        emu.act.add_staff(userid, name)
    gone = emu.act.customer_adds_staff("zhangsan", name="客户乙", welcome_code=False)
    moved = emu.act.customer_adds_staff("zhangsan", name="客户丙", welcome_code=False)
    settle(db_session, emu)
    emu.act.staff_deletes_customer("zhangsan", gone)
    with app.app_context():
        from wecom.client import contact_client

        assert contact_client().transfer_customer("zhangsan", "lisi", [moved])[0]["errcode"] == 0
    emu.clock.advance(24 * 3600 + 1)
    emu.state.tick()  # the transfer completes: add for lisi, del (DELETE_BY_TRANSFER) for zhangsan
    settle(db_session, emu)
    rel = _relation(db_session, "zhangsan", gone)
    assert (rel.status, rel.lost_reason) == ("lost", "del_external_contact")
    old = _relation(db_session, "zhangsan", moved)
    assert (old.status, old.lost_reason) == ("lost", "transferred")
    assert _relation(db_session, "lisi", moved).status == "active"
    _applied_once(db_session)


# ---------------------------------------------------------------- group chats and corp tags


def test_group_chat_life(db_session: Any, wired: Any) -> None:
    emu = wired
    emu.act.add_staff("zhangsan", "张三")
    c1 = emu.act.customer_adds_staff("zhangsan", name="群友一", welcome_code=False)
    c2 = emu.act.customer_adds_staff("zhangsan", name="群友二", welcome_code=False)
    chat_id = emu.act.group_chat_created("zhangsan", [c1], "华东客户群")
    emu.act.group_chat_member_joined(chat_id, [c2], join_scene=3)
    emu.act.group_chat_renamed(chat_id, "华东VIP群")
    settle(db_session, emu)
    chat = db_session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))
    assert chat.name == "华东VIP群" and chat.owner_userid == "zhangsan" and chat.dismissed_at is None
    members = {m.member_id: m for m in chat.members}
    assert set(members) == {"zhangsan", c1, c2} and members[c2].join_scene == 3
    assert chat.member_version == emu.state.group_chats[chat_id].member_version

    emu.act.group_chat_member_left(chat_id, [c1])
    emu.act.group_chat_dismissed(chat_id)
    settle(db_session, emu)
    db_session.expire_all()
    chat = db_session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))
    assert chat.dismissed_at is not None
    assert db_session.scalar(select(GroupChatMember).where(GroupChatMember.chat_pk == chat.id,
                                                           GroupChatMember.member_id == c1)).left_at is not None
    _applied_once(db_session)


def test_corp_tags_edited_in_the_admin_console(db_session: Any, wired: Any) -> None:
    emu = wired
    group_id, (a, b) = emu.act.corp_tag_group_created("行业", ["教育", "医疗"])
    c = emu.act.corp_tag_created(group_id, "金融")
    emu.act.corp_tag_renamed(a, "教育培训")
    emu.act.corp_tag_renamed(group_id, "所属行业")
    settle(db_session, emu)
    tags = {t.tag_id: t for t in db_session.scalars(select(Tag))}
    assert {t: tags[t].name for t in (a, b, c)} == {a: "教育培训", b: "医疗", c: "金融"}
    assert db_session.scalar(select(TagGroup.name).where(TagGroup.group_id == group_id)) == "所属行业"

    emu.act.corp_tags_reordered(group_id)
    emu.act.corp_tag_deleted(b)
    settle(db_session, emu)
    db_session.expire_all()
    tags = {t.tag_id: t for t in db_session.scalars(select(Tag))}
    assert tags[b].deleted_at is not None and tags[a].deleted_at is None
    assert {t: tags[t].order for t in (a, c)} == {t: emu.state.tags[t].order for t in (a, c)}
    emu.act.corp_tag_deleted(group_id)  # the whole group
    settle(db_session, emu)
    db_session.expire_all()
    assert all(t.deleted_at is not None for t in db_session.scalars(select(Tag)))
    assert db_session.scalar(select(TagGroup.deleted_at).where(TagGroup.group_id == group_id)) is not None
    _applied_once(db_session)


# ---------------------------------------------------------------- duplicates and disorder


def _post(url: str, plaintext: str) -> requests.Response:
    crypto = CallbackCrypto(TEST_SETTINGS["WECOM_TOKEN"], TEST_SETTINGS["WECOM_ENCODING_AES_KEY"], TEST_CORP_ID)
    query, body = crypto.encrypt_envelope(plaintext)
    return requests.post(url, params=query, data=body, timeout=5)


def test_the_same_callback_three_times_is_one_row_applied_once(db_session: Any, emu: Any, live_server: Any,
                                                               worker: Worker) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ext = emu.act.customer_adds_staff("zhangsan", name="重复客户")  # no callback URL yet: keep the payload
    assert emu.wait_idle(5)
    payload = emu.deliveries[-1].payload
    for _ in range(3):
        assert _post(live_server.url + "/wecom/callback", payload).text == "success"
    settle(db_session, emu)
    rows = db_session.scalars(select(InboxEvent)).all()
    assert len(rows) == 1 and rows[0].duplicates == 2 and rows[0].status == "done"
    assert _count(db_session, AuditLog, AuditLog.actor == "wecom") == 1
    assert emu.call_count(WELCOME) == 1 and len(emu.state.welcome_messages) == 1
    assert _relation(db_session, "zhangsan", ext).status == "active"


def test_out_of_order_callbacks_end_in_wecoms_current_state(db_session: Any, emu: Any, live_server: Any,
                                                            app: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("lisi", "李四")
    group_id, (tag,) = emu.act.corp_tag_group_created("来源", ["官网"])
    emu.act.corp_tag_renamed(tag, "官方网站")
    ext = emu.act.customer_adds_staff("zhangsan", name="乱序客户", welcome_code=False)
    emu.act.customer_adds_staff("lisi", name="乱序客户", external_userid=ext, welcome_code=False)
    emu.act.staff_edits_tags("zhangsan", ext, add=[tag])
    emu.act.staff_edits_tags("lisi", ext, add=[tag])
    emu.act.staff_deletes_customer("zhangsan", ext)
    chat_id = emu.act.group_chat_created("zhangsan", [], "乱序群")
    emu.act.group_chat_renamed(chat_id, "乱序群2")
    emu.act.group_chat_dismissed(chat_id)
    assert emu.wait_idle(5)
    payloads = [d.payload for d in emu.deliveries]
    for payload in reversed(payloads):  # newest first
        assert _post(live_server.url + "/wecom/callback", payload).text == "success"
    w = _start(app)
    try:
        settle(db_session, emu)
    finally:
        _stop(w)
    rel = _relation(db_session, "zhangsan", ext)
    assert rel.status == "lost" and rel.lost_reason == "del_external_contact"
    kept = _relation(db_session, "lisi", ext)
    assert kept.status == "active" and _tag_ids(db_session, kept) == {tag}
    assert db_session.scalar(select(Tag.name).where(Tag.tag_id == tag)) == "官方网站"
    assert db_session.scalar(select(GroupChat.dismissed_at).where(GroupChat.chat_id == chat_id)) is not None
    _applied_once(db_session)


# ---------------------------------------------------------------- the outbox under faults


def _tagging_world(emu: Any, customers: int) -> tuple[list[str], list[str]]:
    emu.act.add_staff("zhangsan", "张三")
    _, tags = emu.act.corp_tag_group_created("意向", ["高", "中", "低"])
    exts = [emu.act.customer_adds_staff("zhangsan", name=f"客户{i}", welcome_code=False) for i in range(customers)]
    return exts, tags


def _enqueue_marks(db_session: Any, exts: list[str], tags: list[str]) -> list[int]:
    ids = [enqueue(TEST_CORP_ID, "mark_tag", "mark_tag",
                   {"userid": "zhangsan", "external_userid": ext, "add_tag": [tags[i % len(tags)]]}).id
           for i, ext in enumerate(exts)]
    db_session.commit()
    return ids


def test_outbox_waits_out_5xx_and_45009_then_everything_is_sent(db_session: Any, emu: Any, app: Any) -> None:
    exts, tags = _tagging_world(emu, 6)
    emu.faults.add(path=MARK_TAG, http_status=502, times=7)
    emu.faults.add(path=MARK_TAG, errcode=45009, times=6)
    ids = _enqueue_marks(db_session, exts, tags)
    w = _start(app)
    try:
        settle(db_session, emu, timeout=30)
    finally:
        _stop(w)
    rows = db_session.scalars(select(OutboxCommand).where(OutboxCommand.id.in_(ids))).all()
    assert {r.status for r in rows} == {"done"}
    assert any(r.attempts > 1 for r in rows)  # some waited for a later attempt
    assert emu.call_count(MARK_TAG) == len(ids) + 13
    for i, ext in enumerate(exts):
        assert tags[i % len(tags)] in emu.state.relation_tags("zhangsan", ext)


def test_permanent_refusal_fails_with_errcode_and_corrects_local_state(db_session: Any, emu: Any, app: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    _, (tag,) = emu.act.corp_tag_group_created("意向", ["高"])
    ext = emu.act.customer_adds_staff("zhangsan", name="客户", welcome_code=False)
    from crm.handlers import apply_tag_groups, refresh_customer
    from wecom.client import contact_client

    apply_tag_groups(TEST_CORP_ID, contact_client().get_corp_tag_list(), complete=True)
    refresh_customer(TEST_CORP_ID, ext)
    db_session.commit()
    rel = _relation(db_session, "zhangsan", ext)
    tag_pk = db_session.scalar(select(Tag.id).where(Tag.tag_id == tag))
    # a local change WeCom will refuse: the customer deletes staff before it is sent
    db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=rel.id, tag_pk=tag_pk,
                                 customer_id=rel.customer_id, source="staff"))
    command = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag",
                      {"userid": "zhangsan", "external_userid": ext, "add_tag": [tag]}, relation_id=rel.id)
    db_session.commit()
    emu.faults.add(path=MARK_TAG, errcode=84061, times=1)
    w = _start(app)
    try:
        settle(db_session, emu)
    finally:
        _stop(w)
    db_session.expire_all()
    command = db_session.get(OutboxCommand, command.id)
    assert (command.status, command.last_errcode) == ("failed", 84061)
    assert _tag_ids(db_session, _relation(db_session, "zhangsan", ext)) == set()  # WeCom's state again
    assert _count(db_session, AuditLog, AuditLog.action == "outbox.refused") == 1


def test_two_workers_never_send_the_same_command_twice(db_session: Any, emu: Any, app: Any) -> None:
    exts, tags = _tagging_world(emu, 40)
    emu.faults.add(path=MARK_TAG, delay=0.01, times=1000)  # each call takes a while: real overlap
    ids = _enqueue_marks(db_session, exts, tags)
    workers = [Worker(app, poll_interval=0.05, retry_base=0.05, lease=30, batch=3) for _ in range(2)]
    for w in workers:
        w.start_thread()
    try:
        settle(db_session, emu, timeout=60)
    finally:
        _stop(*workers)
    assert {r.status for r in db_session.scalars(select(OutboxCommand).where(OutboxCommand.id.in_(ids)))} == {"done"}
    assert emu.call_count(MARK_TAG) == len(ids)
    sent = [c[3]["external_userid"] for c in emu.calls if c[1] == MARK_TAG]
    assert len(set(sent)) == len(ids)
    assert all(sum(w.counts.values()) > 0 for w in workers), [w.counts for w in workers]


def test_welcome_past_its_deadline_is_failed_expired_not_sent(db_session: Any, emu: Any, app: Any) -> None:
    import datetime as dt

    from core.db import utcnow

    command = enqueue(TEST_CORP_ID, "welcome", "send_welcome_msg", {"welcome_code": "WC-late", "text": "你好"},
                      not_after=utcnow() - dt.timedelta(seconds=1))
    db_session.commit()
    w = _start(app)
    try:
        settle(db_session, emu)
    finally:
        _stop(w)
    db_session.expire_all()
    command = db_session.get(OutboxCommand, command.id)
    assert (command.status, command.last_error) == ("failed", "expired")
    assert emu.call_count(WELCOME) == 0
