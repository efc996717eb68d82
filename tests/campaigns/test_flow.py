"""A campaign from composing to its last result, against the emulator over HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from campaigns import service
from campaigns.following import follow_due
from campaigns.models import Campaign, CampaignRecipient, CampaignTask
from campaigns.sending import dispatch_due
from core.db import utcnow
from tests.campaigns.conftest import Corp, principal, send_all
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client

ADD = "/cgi-bin/externalcontact/add_msg_template"


def test_sent_at_its_time_once_per_sender_and_followed_to_the_end(app: Any, db_session: Any, small: Corp) -> None:
    emu = small.emu
    send_at = utcnow() + dt.timedelta(hours=1)
    campaign = service.create(principal(), {"name": "双十二", "filter": {"tag": small.tags["VIP"]},
                                            "text": "会员日全场八折", "send_at": send_at})
    db_session.commit()
    assert dispatch_due(TEST_CORP_ID, send_at - dt.timedelta(minutes=1), contact_client()) == 0
    assert db_session.get(Campaign, campaign.id).status == "scheduled"
    assert dispatch_due(TEST_CORP_ID, send_at, contact_client()) == 1
    db_session.expire_all()
    assert db_session.get(Campaign, campaign.id).status == "sending"
    send_all(app)
    db_session.expire_all()
    tasks = db_session.scalars(select(CampaignTask).order_by(CampaignTask.sender_userid)).all()
    assert [(t.sender_userid, t.size, t.status) for t in tasks] == [
        ("lisi", 1, "created"), ("wangwu", 2, "created"), ("zhangsan", 2, "created")]
    assert emu.call_count(ADD) == 3
    assert sorted(m["touser"] for m in emu.state.messages) == [["lisi"], ["wangwu"], ["zhangsan"]]
    emu.act.staff_sends_all_groupmsgs()
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    db_session.expire_all()
    row = db_session.get(Campaign, campaign.id)
    assert row.status == "done", (row.status, row.error)
    statuses = dict(db_session.execute(select(CampaignRecipient.target, CampaignRecipient.status)).tuples().all())
    assert set(statuses.values()) == {"delivered"} and len(statuses) == 5
