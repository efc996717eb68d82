"""Sending through the outbox against the emulator over HTTP: never twice (a worker killed at the moment of
sending, an answer lost), cancel before and while sending, remind's limit, group chats, attachments."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update

from campaigns import media, planning, sending, service
from campaigns.following import follow_due
from campaigns.models import Campaign, CampaignRecipient, CampaignReminder, CampaignTask, CampaignUpload
from campaigns.sending import dispatch_due
from core.db import utcnow
from core.errors import Conflict
from crm.models import AuditLog, GroupChat, Staff, Tag
from tagging.segments.service import delete_segment, save_segment
from tests.campaigns.conftest import Corp, due_now, principal, send_all
from tests.helpers import TEST_CORP_ID
from wecom import commands
from wecom.client import contact_client
from wecom.models import OutboxCommand
from wecom.service import claim_commands, process_command

ADD = "/cgi-bin/externalcontact/add_msg_template"
CANCEL = "/cgi-bin/externalcontact/cancel_groupmsg_send"
REMIND = "/cgi-bin/externalcontact/remind_groupmsg_send"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Killed(BaseException):
    """The worker process dies (kill -9) right after WeCom answered, before our commit."""


def _campaign(db_session: Any, corp: Corp, **extra: Any) -> Campaign:
    body = {"name": "双十二", "filter": {"tag": corp.tags["VIP"]}, "text": "会员日全场八折", **extra}
    campaign = service.create(principal(), body)
    db_session.commit()
    return campaign


def _due(db_session: Any, when: dt.datetime | None = None) -> None:
    dispatch_due(TEST_CORP_ID, when or utcnow(), contact_client())
    db_session.expire_all()


def _tasks(db_session: Any) -> list[CampaignTask]:
    db_session.expire_all()
    return list(db_session.scalars(select(CampaignTask).order_by(CampaignTask.sender_userid, CampaignTask.seq)))


def _templates_by_sender(emu: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tpl in emu.state.msg_templates.values():
        for userid, task in tpl.tasks.items():
            out.setdefault(userid, []).extend(task.targets)
    return out


def test_a_worker_killed_at_the_moment_of_sending_never_sends_twice(app: Any, db_session: Any, small: Corp,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    emu = small.emu
    _campaign(db_session, small)
    _due(db_session)
    real = commands.COMMANDS["add_msg_template"]

    def answer_then_die(client: Any, args: Any) -> Any:
        real.call(client, args)
        raise Killed()

    monkeypatch.setitem(commands.COMMANDS, "add_msg_template",
                        commands.Command("contact", answer_then_die, repeatable=False))
    with pytest.raises(Killed):
        send_all(app)
    monkeypatch.setitem(commands.COMMANDS, "add_msg_template", real)
    db_session.expire_all()
    stuck = db_session.scalar(select(OutboxCommand).where(OutboxCommand.sending_at.is_not(None)))
    assert stuck.status == "pending" and emu.call_count(ADD) == 1
    # the dead worker's lease runs out; a new worker takes the command over and asks WeCom first
    db_session.execute(update(OutboxCommand).values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    send_all(app)
    tasks = _tasks(db_session)
    assert {t.status for t in tasks} == {"created"} and len({t.msgid for t in tasks}) == 3
    assert emu.call_count(ADD) == 3 and len(emu.state.msg_templates) == 3  # the first was not sent again
    assert {u: sorted(t) for u, t in _templates_by_sender(emu).items()} == {
        "zhangsan": sorted([small.ext(0), small.ext(1)]), "lisi": [small.ext(2)],
        "wangwu": sorted([small.ext(3), small.ext(4)])}
    reconciled = db_session.get(OutboxCommand, stuck.id)
    assert reconciled.status == "done" and reconciled.result["reconciled"] is True


def test_a_lost_answer_is_found_in_wecom_and_a_send_wecom_never_got_is_sent_again(
        app: Any, db_session: Any, small: Corp, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = small.emu
    _campaign(db_session, small)
    _due(db_session)
    contact_client().timeout = 0.5
    try:
        emu.faults.add(path=ADD, delay=1.2, times=1)  # WeCom acts, but answers after our read timeout
        emu.faults.add(path=ADD, http_status=502, times=1)  # a gateway error: WeCom never saw it
        send_all(app, retry_base=60)
    finally:
        contact_client().timeout = 5.0
    time.sleep(1.0)  # the slow request finishes in the emulator
    assert emu.call_count(ADD) == 3 and len(emu.state.msg_templates) == 2
    monkeypatch.setattr(sending, "RECONCILE_SETTLE", dt.timedelta(0))
    due_now(db_session)
    send_all(app)
    tasks = _tasks(db_session)
    assert {t.status for t in tasks} == {"created"}
    assert emu.call_count(ADD) == 4  # 3 tasks: one answered late (found, not resent), one 502 (sent again)
    assert len(emu.state.msg_templates) == 3 and len({t.msgid for t in tasks}) == 3
    assert sorted(len(v) for v in _templates_by_sender(emu).values()) == [1, 2, 2]


def test_not_found_soon_after_sending_is_asked_again_not_resent(app: Any, db_session: Any, small: Corp) -> None:
    _campaign(db_session, small)
    _due(db_session)
    small.emu.faults.add(path=ADD, http_status=502, times=1)
    send_all(app, retry_base=60)
    due_now(db_session)
    send_all(app, retry_base=60)
    db_session.expire_all()
    waiting = db_session.scalar(select(OutboxCommand).where(OutboxCommand.sending_at.is_not(None)))
    assert waiting.status == "pending" and "asking again" in (waiting.last_error or "")
    assert small.emu.call_count(ADD) == 3


def test_cancel_before_the_send_time_sends_nothing(app: Any, db_session: Any, small: Corp) -> None:
    send_at = utcnow() + dt.timedelta(hours=2)
    campaign = _campaign(db_session, small, send_at=send_at)
    service.cancel_campaign(principal(), campaign)
    db_session.commit()
    _due(db_session, send_at + dt.timedelta(minutes=1))
    send_all(app)
    assert db_session.get(Campaign, campaign.id).status == "cancelled"
    assert small.emu.call_count(ADD) == 0
    with pytest.raises(Conflict):
        service.cancel_campaign(principal(), db_session.get(Campaign, campaign.id))


def test_cancel_while_sending_withdraws_what_waits_and_cancels_what_wecom_made(
        app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    campaign = _campaign(db_session, small)
    _due(db_session)
    (first,) = claim_commands("w1", 1, 60)
    assert process_command(first, "w1", lambda name: contact_client(), retry_base=0.0) == "done"
    service.cancel_campaign(principal(), db_session.get(Campaign, campaign.id))
    db_session.commit()
    send_all(app)
    tasks = _tasks(db_session)
    assert sorted(t.status for t in tasks) == ["cancelled", "cancelled", "cancelling"]
    assert emu.call_count(ADD) == 1 and emu.call_count(CANCEL) == 1
    (made,) = emu.state.msg_templates.values()
    assert made.cancelled
    withdrawn = db_session.scalars(select(OutboxCommand).where(OutboxCommand.kind == "campaign_send",
                                                               OutboxCommand.status == "failed")).all()
    assert len(withdrawn) == 2 and all("withdrawn" in (c.last_error or "") for c in withdrawn)
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)  # get_groupmsg_task answers 41093
    db_session.expire_all()
    row = db_session.get(Campaign, campaign.id)
    assert row.status == "cancelled" and row.finished_at is not None
    assert {t.status for t in _tasks(db_session)} == {"cancelled"}
    assert set(db_session.scalars(select(CampaignRecipient.status))) == {"cancelled"}
    assert service.campaign_dict(row)["status_label"] == "已取消"


def test_remind_three_times_in_a_day_then_refused_before_wecom(app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    campaign = _campaign(db_session, small)
    _due(db_session)
    send_all(app)
    start = utcnow()
    for i in range(3):
        service.remind_senders(principal(), db_session.get(Campaign, campaign.id), now=start + dt.timedelta(hours=i))
        db_session.commit()
    with pytest.raises(Conflict) as refused:
        service.remind_senders(principal(), db_session.get(Campaign, campaign.id), now=start + dt.timedelta(hours=5))
    assert "24 小时内最多提醒 3 次" in refused.value.message
    db_session.rollback()
    send_all(app)
    assert emu.call_count(REMIND) == 9  # 3 reminders × 3 unconfirmed messages, never a 4th
    # a day after the first, one more is allowed; WeCom refusing it (41094) is recorded, not lost
    emu.clock.advance(25 * 3600)
    emu.faults.add(path=REMIND, errcode=41094, times=1)
    service.remind_senders(principal(), db_session.get(Campaign, campaign.id), now=start + dt.timedelta(hours=25))
    db_session.commit()
    send_all(app)
    db_session.expire_all()
    last = db_session.scalar(select(CampaignReminder).order_by(CampaignReminder.id.desc()))
    assert last.tasks == 3 and last.refused == 1
    assert db_session.scalar(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "campaign.remind_failed")) == 1
    emu.act.staff_sends_all_groupmsgs()
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    with pytest.raises(Conflict):  # everyone confirmed: nothing to remind (a done campaign)
        service.remind_senders(principal(), db_session.get(Campaign, campaign.id))


def test_a_group_chat_campaign_sends_one_task_per_owner_within_2000_chats(
        app: Any, db_session: Any, small: Corp, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = small.emu
    chats: dict[str, list[str]] = {"zhangsan": [], "lisi": [], "wangwu": []}
    for owner, n in (("zhangsan", 3), ("lisi", 2), ("wangwu", 1)):
        for i in range(n):
            chats[owner].append(emu.act.group_chat_created(owner, [small.ext(0)], f"{owner}的群{i}"))
    for owner, ids in chats.items():
        for i, chat_id in enumerate(ids):
            db_session.add(GroupChat(corp_id=TEST_CORP_ID, chat_id=chat_id, name=f"{owner}的群{i}", owner_userid=owner,
                                     dismissed_at=utcnow() if (owner, i) == ("lisi", 1) else None))
    db_session.execute(update(Staff).where(Staff.userid == "wangwu").values(status="resigned"))
    db_session.commit()
    monkeypatch.setattr(planning, "MAX_CHATS_PER_CALL", 2)
    preview = service.preview(principal(), {"chat_type": "group", "owners": ["zhangsan", "lisi", "wangwu"]})
    assert (preview["count"], preview["calls"], preview["excluded"]) == (4, 3, {"lost": 1, "quota": 0, "no_sender": 1})
    campaign = service.create(principal(), {"name": "群公告", "chat_type": "group", "text": "本周六闭店盘点",
                                            "owners": ["zhangsan", "lisi", "wangwu"]})
    db_session.commit()
    _due(db_session)
    send_all(app)
    tasks = _tasks(db_session)
    assert [(t.sender_userid, t.size) for t in tasks] == [("lisi", 1), ("zhangsan", 2), ("zhangsan", 1)]
    assert emu.call_count(ADD) == 3
    assert {u: sorted(t) for u, t in _templates_by_sender(emu).items()} == {
        "zhangsan": sorted(chats["zhangsan"]), "lisi": [chats["lisi"][0]]}
    for tpl in emu.state.msg_templates.values():  # the owner picks only some chats when confirming
        (owner,) = tpl.tasks
        picked = [c for c in tpl.tasks[owner].targets if c != chats["zhangsan"][2]]
        emu.act.staff_sends_groupmsg(tpl.msgid, owner, chat_ids=picked)
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    db_session.expire_all()
    results = dict(db_session.execute(select(CampaignRecipient.target, CampaignRecipient.status)).tuples().all())
    assert results[chats["zhangsan"][0]] == results[chats["lisi"][0]] == "delivered"
    assert results[chats["zhangsan"][2]] == "planned"  # not picked: only sent chats are listed by WeCom
    assert results[chats["lisi"][1]] == "excluded" and results[chats["wangwu"][0]] == "excluded"
    campaign = db_session.get(Campaign, campaign.id)
    follow_due(TEST_CORP_ID, campaign.follow_until + dt.timedelta(seconds=1), contact_client(), force=True)
    db_session.expire_all()
    assert db_session.get(Campaign, campaign.id).status == "done"
    assert db_session.scalar(select(CampaignRecipient.status).where(
        CampaignRecipient.target == chats["zhangsan"][2])) == "unsent"


def test_attachments_are_uploaded_at_send_time_and_again_when_wecom_finds_them_expired(
        app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    image = media.save_upload(TEST_CORP_ID, "xiaomei", "image", "poster.png", "image/png", PNG)
    cover = media.save_upload(TEST_CORP_ID, "xiaomei", "image", "cover.png", "image/png", PNG + b"1")
    doc = media.save_upload(TEST_CORP_ID, "xiaomei", "file", "价目表.pdf", "application/pdf", b"%PDF-1.4 price list")
    db_session.commit()
    attachments = [{"msgtype": "image", "image": {"upload_id": image.id}},
                   {"msgtype": "link", "link": {"title": "活动详情", "url": "https://example.com/sale", "desc": "八折"}},
                   {"msgtype": "miniprogram", "miniprogram": {"title": "商城", "appid": "wx8bd80126147dfAAA",
                                                              "page": "pages/index", "pic_upload_id": cover.id}},
                   {"msgtype": "file", "file": {"upload_id": doc.id}}]
    _campaign(db_session, small, attachments=attachments)
    assert not emu.state.media  # nothing reaches WeCom when composing
    emu.faults.add(path=ADD, errcode=40007, times=1)  # the first send finds its media expired
    _due(db_session)
    assert len(emu.state.media) == 3
    send_all(app)
    tasks = _tasks(db_session)
    assert sorted(t.status for t in tasks) == ["created", "created", "pending"]
    _due(db_session)  # the send job uploads the media again and sends that task again
    assert len(emu.state.media) == 6
    send_all(app)
    tasks = _tasks(db_session)
    assert {t.status for t in tasks} == {"created"} and max(t.attempts for t in tasks) == 2
    sent = [tpl.attachments for tpl in emu.state.msg_templates.values()]
    assert len(sent) == 3 and all([a["msgtype"] for a in s] == ["image", "link", "miniprogram", "file"] for s in sent)
    # media older than two days are uploaded again before a later campaign uses them
    db_session.execute(update(CampaignUpload).values(media_uploaded_at=utcnow() - dt.timedelta(days=2, hours=1)))
    db_session.commit()
    emu.act.staff_sends_all_groupmsgs()
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)  # delivered today: tomorrow is free
    emu.clock.advance(86400)
    _campaign(db_session, small, attachments=attachments[:1], name="第二波")
    _due(db_session, utcnow() + dt.timedelta(days=1))
    assert len(emu.state.media) == 7


def test_a_campaign_with_nobody_to_send_to_fails_saying_why(app: Any, db_session: Any, small: Corp) -> None:
    db_session.execute(update(Staff).values(status="resigned"))
    db_session.commit()
    campaign = _campaign(db_session, small)
    _due(db_session)
    row = db_session.get(Campaign, campaign.id)
    assert row.status == "failed" and "没有可发送的客户" in row.error
    assert row.counts["excluded"]["no_sender"] == 5 and small.emu.call_count(ADD) == 0


def test_a_saved_segment_is_read_when_sending_not_when_composing(app: Any, db_session: Any, small: Corp) -> None:
    segment = save_segment(TEST_CORP_ID, "VIP 客户", {"tag": small.tags["VIP"]}, "xiaomei")
    db_session.commit()
    campaign = service.create(principal(), {"name": "分群群发", "segment_id": segment.id, "text": "你好"})
    save_segment(TEST_CORP_ID, "VIP 客户", {"tag": small.tags["普通"]}, "xiaomei", segment=segment)
    db_session.commit()
    _due(db_session)
    targets = set(db_session.scalars(select(CampaignRecipient.target).where(
        CampaignRecipient.campaign_id == campaign.id)))
    assert targets == {small.ext(5)}


def test_a_deleted_segment_or_tag_fails_the_campaign_saying_why(app: Any, db_session: Any, small: Corp) -> None:
    segment = save_segment(TEST_CORP_ID, "VIP 客户", {"tag": small.tags["VIP"]}, "xiaomei")
    db_session.commit()
    by_segment = service.create(principal(), {"name": "分群已删", "segment_id": segment.id, "text": "你好"})
    by_tag = service.create(principal(), {"name": "标签已删", "filter": {"tag": small.tags["普通"]}, "text": "你好"})
    delete_segment(segment, "xiaomei")
    db_session.execute(update(Tag).where(Tag.tag_id == small.tags["普通"]).values(deleted_at=utcnow()))
    db_session.commit()
    _due(db_session)
    assert db_session.get(Campaign, by_segment.id).status == "failed"
    assert "分群已被删除" in db_session.get(Campaign, by_segment.id).error
    assert db_session.get(Campaign, by_tag.id).status == "failed"
    assert "标签已被删除" in db_session.get(Campaign, by_tag.id).error
    assert small.emu.call_count(ADD) == 0


def test_the_cli_sends_what_is_due_and_shows_progress(app: Any, db_session: Any, small: Corp) -> None:
    campaign = _campaign(db_session, small)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["campaigns", "send-due"])
    assert result.exit_code == 0 and "1 campaign(s) handled" in result.output
    send_all(app)
    small.emu.act.staff_sends_all_groupmsgs()
    assert "3 task(s) read" in runner.invoke(args=["campaigns", "follow", "--all"]).output
    shown = runner.invoke(args=["campaigns", "show", str(campaign.id)])
    assert "已完成" in shown.output and "100%" in shown.output and "delivered 5" in shown.output
