"""The issue's end-to-end case, against the emulator over HTTP: a campaign scheduled to a saved segment of
25,000 customers followed by 20 staff is sent at its time (the clock advanced) in the right number of
add_msg_template calls, each customer in exactly one task, never twice although the worker is killed at
the moment of sending, and ends with per-customer results equal to what the emulator recorded, read
over several result pages."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from campaigns.following import follow_due
from campaigns.models import Campaign, CampaignRecipient, CampaignTask
from campaigns.sending import dispatch_due
from core.db import utcnow
from crm.models import FollowUp
from tagging.segments.service import save_segment
from tests.campaigns.conftest import Person, build, send_all
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import token
from wecom import commands
from wecom.client import contact_client
from wecom.models import OutboxCommand

N, STAFF = 25_000, 20
ADD = "/cgi-bin/externalcontact/add_msg_template"
RESULT = "/cgi-bin/externalcontact/get_groupmsg_send_result"
WECOM_STATUS = {1: "delivered", 2: "not_friend", 3: "quota"}


class Killed(BaseException):
    """The worker process dies right after WeCom answered, before our commit."""


def _corp(db_session: Any, emu: Any) -> tuple[Any, dict[str, str]]:
    """25,000 customers: s00 follows the first 11,000 (so it needs two calls), the others are spread over
    s01…s19; every 5th also has a later second follower, who wrote the latest follow-up on every 15th.
    Returns the corp and the sender each customer must get."""
    base = int(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    staff = [(f"s{i:02d}", f"员工{i:02d}") for i in range(STAFF)]
    people: list[Person] = []
    sender: list[str] = []
    wrote: list[tuple[int, str]] = []
    for i in range(N):
        primary = "s00" if i < 11_000 else f"s{1 + i % 19:02d}"
        follows = [(primary, ["VIP"], base + i)]
        chosen = primary
        if i % 5 == 0:
            second = f"s{(i // 5) % STAFF:02d}"
            if second != primary:
                follows.append((second, [], base + N + i))
                if i % 15 == 0:
                    wrote.append((i, second))
                    chosen = second
        people.append(Person(f"客户{i}", follows))
        sender.append(chosen)
    corp = build(db_session, emu, staff, {"客户等级": ["VIP", "普通"]}, people)
    now = utcnow()
    db_session.execute(insert(FollowUp), [{"corp_id": TEST_CORP_ID, "customer_id": corp.ids[corp.ext(i)], "userid": u,
                                           "content": "回访", "created_at": now - dt.timedelta(days=1)}
                                          for i, u in wrote])
    db_session.commit()
    return corp, {corp.ext(i): s for i, s in enumerate(sender)}


@pytest.mark.timeout(180)
def test_25000_customers_20_staff_sent_once_at_its_time_and_followed_to_every_result(
        app: Any, client: Any, db_session: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    corp, expected = _corp(db_session, emu)
    segment = save_segment(TEST_CORP_ID, "全部 VIP", {"tag": corp.tags["VIP"]}, "xiaomei")
    db_session.commit()
    send_at = utcnow() + dt.timedelta(hours=1)
    answer = client.post("/api/v1/campaigns", headers=token(db_session, "marketer", name="scale"),
                         json={"name": "年终回馈", "segment_id": segment.id, "text": "年终回馈，到店有礼",
                               "send_at": send_at.isoformat()})
    assert answer.status_code == 201, answer.get_json()
    campaign_id = answer.get_json()["id"]

    # nothing before its time; at its time, planned and one command per call
    assert dispatch_due(TEST_CORP_ID, send_at - dt.timedelta(seconds=1), contact_client()) == 0
    assert dispatch_due(TEST_CORP_ID, send_at, contact_client()) == 1
    per_sender = Counter(expected.values())
    calls = sum(math.ceil(n / 10_000) for n in per_sender.values())
    assert per_sender["s00"] > 10_000 and calls == STAFF + 1
    assert db_session.query(OutboxCommand).filter_by(kind="campaign_send").count() == calls

    # the worker is killed right after WeCom answered its second call; another takes over
    emu.act.groupmsg_settings(auto_confirm=60)
    real, sent = commands.COMMANDS["add_msg_template"], []

    def answer_then_die(c: Any, args: Any) -> Any:
        result = real.call(c, args)
        sent.append(result)
        if len(sent) == 2:
            raise Killed()
        return result

    monkeypatch.setitem(commands.COMMANDS, "add_msg_template", commands.Command("contact", answer_then_die, False))
    with pytest.raises(Killed):
        send_all(app)
    monkeypatch.setitem(commands.COMMANDS, "add_msg_template", real)
    db_session.execute(update(OutboxCommand).where(OutboxCommand.status == "pending")
                       .values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    send_all(app)
    assert emu.call_count(ADD) == calls and len(emu.state.msg_templates) == calls
    targets = Counter(t for tpl in emu.state.msg_templates.values() for task in tpl.tasks.values()
                      for t in task.targets)
    assert len(targets) == N and set(targets.values()) == {1}  # every customer in exactly one task
    assert {t: u for tpl in emu.state.msg_templates.values() for u, task in tpl.tasks.items()
            for t in task.targets} == expected  # by the one chosen sender
    db_session.expire_all()
    assert {t.status for t in db_session.scalars(select(CampaignTask))} == {"created"}

    # before the senders confirm: 10 customers deleted their sender, 10 got a member's own message today
    not_friends = [e for i, e in enumerate(expected) if i % 2500 == 7]
    own = [e for i, e in enumerate(expected) if i % 2500 == 11]
    for ext in not_friends:
        emu.act.customer_deletes_staff(expected[ext], ext)
    for ext in own:
        emu.act.staff_creates_groupmsg(expected[ext], [ext])
    emu.clock.advance(61)  # every sender confirms
    follow_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    assert emu.call_count(RESULT) > calls  # s00's 10,000 customers take ten pages of at most 1,000
    recorded = {target: WECOM_STATUS[status] for tpl in emu.state.msg_templates.values() if tpl.create_type == 0
                for task in tpl.tasks.values() for target, (status, _) in task.results.items()}
    db_session.expire_all()
    ours = dict(db_session.execute(select(CampaignRecipient.target, CampaignRecipient.status)
                                   .where(CampaignRecipient.campaign_id == campaign_id)).tuples().all())
    assert ours == recorded
    assert Counter(ours.values()) == {"delivered": N - 20, "not_friend": 10, "quota": 10}
    campaign = db_session.get(Campaign, campaign_id)
    assert campaign.status == "done" and campaign.counts["delivered"] == N - 20
