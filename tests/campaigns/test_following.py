"""Following a campaign to the end: confirmations and per-customer results (delivered, not a friend, quota),
the follow window closing, WeCom's own mass messages counted for the quota, tagging delivered customers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from campaigns import service
from campaigns.following import follow_due, scan_foreign
from campaigns.models import Campaign, CampaignRecipient, CampaignTask, ForeignMessage, ForeignReceipt
from campaigns.sending import dispatch_due
from core.db import utcnow
from crm.models import FollowRelation, Tag, TagAssignment
from tagging.bulk.service import run_pending_jobs
from tests.campaigns.conftest import Corp, principal, send_all
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client

TASK = "/cgi-bin/externalcontact/get_groupmsg_task"


def _send(app: Any, db_session: Any, corp: Corp, **extra: Any) -> Campaign:
    campaign = service.create(principal(), {"name": "跟踪", "filter": {"tag": corp.tags["VIP"]}, "text": "你好",
                                            **extra})
    db_session.commit()
    dispatch_due(TEST_CORP_ID, utcnow(), contact_client())
    send_all(app)
    db_session.expire_all()
    return db_session.get(Campaign, campaign.id)


def _results(db_session: Any) -> dict[str, str]:
    db_session.expire_all()
    return dict(db_session.execute(select(CampaignRecipient.target, CampaignRecipient.status)).tuples().all())


def test_results_not_a_friend_quota_and_the_window_closing(app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    campaign = _send(app, db_session, small)
    by_sender = {t.sender_userid: t.msgid for t in db_session.scalars(select(CampaignTask))}
    emu.act.customer_deletes_staff("zhangsan", small.ext(0))  # not a friend any more when zhangsan sends
    emu.act.staff_creates_groupmsg("zhangsan", [small.ext(1)])  # today's one message spent meanwhile
    emu.act.staff_sends_groupmsg(by_sender["zhangsan"], "zhangsan")
    emu.act.staff_sends_groupmsg(by_sender["lisi"], "lisi")
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    results = _results(db_session)
    assert results == {small.ext(0): "not_friend", small.ext(1): "quota", small.ext(2): "delivered",
                       small.ext(3): "planned", small.ext(4): "planned"}  # wangwu has not confirmed
    tasks = {t.sender_userid: t for t in db_session.scalars(select(CampaignTask))}
    assert tasks["zhangsan"].status == "sent" and tasks["zhangsan"].complete and tasks["zhangsan"].confirmed_at
    assert tasks["wangwu"].status == "created" and tasks["wangwu"].next_poll_at is not None
    assert db_session.get(Campaign, campaign.id).status == "following"
    detail = service.detail(db_session.get(Campaign, campaign.id))
    assert {s["userid"]: (s["confirmed"], s["delivered"], s["not_friend"], s["quota"], s["planned"])
            for s in detail["senders"]} == {"zhangsan": (True, 0, 1, 1, 0), "lisi": (True, 1, 0, 0, 0),
                                           "wangwu": (False, 0, 0, 0, 2)}
    assert detail["delivered"] == 1 and detail["delivery_rate"] == 0.2
    # nothing is read before a task's poll is due
    calls = emu.call_count(TASK)
    follow_due(TEST_CORP_ID, utcnow(), contact_client())
    assert emu.call_count(TASK) == calls
    # three days later the window closes: wangwu never confirmed
    follow_due(TEST_CORP_ID, campaign.follow_until + dt.timedelta(seconds=1), contact_client())
    db_session.expire_all()
    row = db_session.get(Campaign, campaign.id)
    assert row.status == "done" and row.finished_at is not None
    assert _results(db_session)[small.ext(3)] == "unsent"
    assert {t.sender_userid: t.status for t in db_session.scalars(select(CampaignTask))}["wangwu"] == "expired"
    assert row.counts["delivered"] == 1 and row.counts["unsent"] == 2 and row.counts["quota"] == 1


def test_every_task_final_closes_the_campaign_early(app: Any, db_session: Any, small: Corp) -> None:
    campaign = _send(app, db_session, small)
    small.emu.act.staff_sends_all_groupmsgs()
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    db_session.expire_all()
    row = db_session.get(Campaign, campaign.id)
    assert row.status == "done" and row.finished_at < row.follow_until
    assert set(_results(db_session).values()) == {"delivered"}


def test_a_poll_wecom_cannot_answer_is_tried_again_later(app: Any, db_session: Any, small: Corp) -> None:
    _send(app, db_session, small)
    small.emu.faults.add(path=TASK, http_status=503, times=20)
    assert follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True) == 0
    small.emu.faults.clear()
    tasks = db_session.scalars(select(CampaignTask)).all()
    assert all("稍后重试" in (t.error or "") and t.next_poll_at > utcnow() for t in tasks)
    small.emu.act.staff_sends_all_groupmsgs()
    assert follow_due(TEST_CORP_ID, utcnow() + dt.timedelta(minutes=5), contact_client()) == 3
    assert set(_results(db_session).values()) == {"delivered"}


def test_what_members_sent_themselves_counts_against_the_quota(app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    own = emu.act.staff_creates_groupmsg("lisi", [small.ext(2)], text="店长推荐")
    now = utcnow()
    assert scan_foreign(TEST_CORP_ID, now - dt.timedelta(hours=1), now, contact_client()) == 1
    receipt = db_session.scalar(select(ForeignReceipt))
    assert (receipt.msgid, receipt.target, receipt.target_pk) == (own, small.ext(2), small.ids[small.ext(2)])
    assert db_session.scalar(select(ForeignMessage.final)) is True
    preview = service.preview(principal(), {"filter": {"tag": small.tags["VIP"]}})
    assert preview["count"] == 4 and preview["excluded"]["quota"] == 1
    campaign = _send(app, db_session, small)  # the send job reads WeCom's list again before planning
    assert _results(db_session)[small.ext(2)] == "excluded"
    assert campaign.counts["excluded"]["quota"] == 1
    # our own messages are never read as foreign ones
    assert scan_foreign(TEST_CORP_ID, now - dt.timedelta(hours=1), utcnow(), contact_client()) == 0


def test_delivered_customers_get_the_chosen_tag_on_the_sending_relation(app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    campaign = _send(app, db_session, small, tag_id=small.tags["普通"])
    emu.act.staff_sends_all_groupmsgs()
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    assert run_pending_jobs(TEST_CORP_ID) == 3  # one bulk tag job per sender's batch of deliveries
    send_all(app)
    tag_pk = db_session.scalar(select(Tag.id).where(Tag.tag_id == small.tags["普通"]))
    tagged = set(db_session.execute(select(FollowRelation.customer_id, FollowRelation.userid).join(
        TagAssignment, TagAssignment.relation_id == FollowRelation.id).where(TagAssignment.tag_pk == tag_pk)).tuples())
    senders = dict(db_session.execute(select(CampaignRecipient.target_pk, CampaignRecipient.sender_userid)
                                      .where(CampaignRecipient.campaign_id == campaign.id)).tuples().all())
    assert {(pk, u) for pk, u in senders.items()} <= tagged  # each on the relation that sent it
    assert emu.state.relation_tags("zhangsan", small.ext(0)) >= {small.tags["普通"]}
    assert small.tags["普通"] in emu.state.relation_tags("wangwu", small.ext(4))
    assert small.tags["普通"] not in emu.state.relation_tags("zhangsan", small.ext(4))  # not the sender of 客户4
