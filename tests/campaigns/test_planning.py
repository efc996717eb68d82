"""Planning at send time: one sender per customer by the campaign's rule (never one who left), exclusions
counted by reason (lost, receive quota, no active sender), calls cut per sender, chunks that resume, and a
preview that says what planning will do."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, union_all, update

from campaigns import planning, service
from campaigns.models import Campaign, CampaignRecipient, CampaignSettings, ForeignReceipt
from campaigns.planning import Audience, decisions, quota_window, task_ranges
from campaigns.sending import plan
from core.db import db, utcnow
from crm.models import Customer, FollowRelation, Staff
from tests.campaigns.conftest import Corp, Person, build, followup, principal
from tests.helpers import TEST_CORP_ID

UTC = dt.timezone.utc


def audience(corp: Corp, tree: Any = None, *, rule: str = "followup", preferred: tuple[str, ...] = (),
             scope: frozenset[str] | None = None, quota: int = 1, period: str = "day",
             campaign_id: int = 0) -> Audience:
    return Audience(corp_id=TEST_CORP_ID, chat_type="single", tree=tree or {"tag": corp.tags["VIP"]}, owners=(),
                    scope_userids=scope, sender_rule=rule, preferred=preferred, quota_count=quota,
                    period=quota_window(period, utcnow()), campaign_id=campaign_id)


def decide(a: Audience) -> dict[str, tuple[Any, str, Any]]:
    """{customer name → (sender, status, reason)} (lost customers included)."""
    query = union_all(decisions(a), planning.lost_query(a)).subquery()
    rows = db.session.execute(select(Customer.name, query.c.sender_userid, query.c.status, query.c.reason)
                              .join(query, query.c.target_pk == Customer.id)).all()
    return {name: (sender, status, reason) for name, sender, status, reason in rows}


def test_the_sender_is_one_active_follower_chosen_by_the_rule(db_session: Any, small: Corp) -> None:
    senders = {k: v[0] for k, v in decide(audience(small)).items()}
    # no follow-ups yet: the earliest relation (客户1: zhangsan before lisi; 客户4: wangwu before zhangsan)
    assert senders == {"客户0": "zhangsan", "客户1": "zhangsan", "客户2": "lisi", "客户3": "wangwu", "客户4": "wangwu"}
    followup(db_session, small, small.ext(1), "lisi", days_ago=2)
    followup(db_session, small, small.ext(1), "zhangsan", days_ago=5)
    followup(db_session, small, small.ext(4), "wangwu", days_ago=9)
    followup(db_session, small, small.ext(4), "zhangsan", days_ago=1)
    db_session.commit()
    senders = {k: v[0] for k, v in decide(audience(small)).items()}
    assert senders["客户1"] == "lisi" and senders["客户4"] == "zhangsan"  # who wrote the latest follow-up
    senders = {k: v[0] for k, v in decide(audience(small, rule="earliest")).items()}
    assert senders["客户1"] == "zhangsan" and senders["客户4"] == "wangwu"
    senders = {k: v[0] for k, v in decide(audience(small, rule="latest")).items()}
    assert senders["客户1"] == "lisi" and senders["客户4"] == "zhangsan"
    senders = {k: v[0] for k, v in decide(audience(small, rule="preferred", preferred=("wangwu", "lisi"))).items()}
    assert senders == {"客户0": "zhangsan", "客户1": "lisi", "客户2": "lisi", "客户3": "wangwu", "客户4": "wangwu"}


def test_never_a_sender_who_left_or_no_longer_follows(db_session: Any, small: Corp) -> None:
    db_session.execute(update(Staff).where(Staff.userid == "wangwu").values(status="resigned"))
    db_session.execute(update(FollowRelation).where(FollowRelation.userid == "zhangsan",
                                                    FollowRelation.customer_id == small.ids[small.ext(1)])
                       .values(status="lost", lost_reason="del_follow_user"))
    db_session.commit()
    decided = decide(audience(small))
    assert decided["客户1"] == ("lisi", "planned", None)  # zhangsan no longer follows 客户1
    assert decided["客户4"] == ("zhangsan", "planned", None)  # wangwu resigned
    assert decided["客户3"] == (None, "excluded", "no_sender")  # only wangwu followed 客户3


def test_lost_customers_are_excluded_and_counted(db_session: Any, small: Corp) -> None:
    db_session.execute(update(Customer).where(Customer.id.in_([small.ids[small.ext(i)] for i in (0, 2)]))
                       .values(stage="意向客户"))
    db_session.execute(update(FollowRelation).where(FollowRelation.customer_id == small.ids[small.ext(2)])
                       .values(status="lost", lost_reason="del_external_contact"))
    db_session.commit()
    decided = decide(audience(small, {"stage": ["意向客户"]}))
    assert decided == {"客户0": ("zhangsan", "planned", None), "客户2": (None, "excluded", "lost")}
    result = service.preview(principal(), {"filter": {"stage": ["意向客户"]}, "text": "x"})
    assert result["count"] == 1 and result["excluded"] == {"lost": 1, "quota": 0, "no_sender": 0}


def _other_campaign(db_session: Any, status: str, rows: list[tuple[int, str, dt.datetime | None]]) -> Campaign:
    other = Campaign(corp_id=TEST_CORP_ID, name="之前的群发", send_at=utcnow(), created_by="t", status=status,
                     planned_at=utcnow() - dt.timedelta(days=40), progress={}, counts={}, plan_cursor=0)
    db_session.add(other)
    db_session.flush()
    for pk, state, sent_at in rows:
        db_session.add(CampaignRecipient(corp_id=TEST_CORP_ID, campaign_id=other.id, target_pk=pk, target=f"t{pk}",
                                         sender_userid="zhangsan", status=state, sent_at=sent_at))
    db_session.commit()
    return other


def test_the_receive_quota_counts_ours_in_flight_and_what_wecom_reported(db_session: Any, small: Corp) -> None:
    now = utcnow()
    start, _ = quota_window("day", now)
    ids = [small.ids[small.ext(i)] for i in range(5)]
    _other_campaign(db_session, "following", [(ids[0], "delivered", start + dt.timedelta(minutes=1)),
                                              (ids[1], "delivered", start - dt.timedelta(minutes=1)),  # yesterday
                                              (ids[2], "planned", None)])  # may still be confirmed today
    db_session.add(ForeignReceipt(corp_id=TEST_CORP_ID, msgid="msgmember", chat_type="single",
                                  target=small.ext(3), target_pk=ids[3], sent_at=now))
    db_session.commit()
    decided = decide(audience(small))
    assert {k: v[2] for k, v in decided.items()} == {"客户0": "quota", "客户1": None, "客户2": "quota",
                                                     "客户3": "quota", "客户4": None}
    assert {k for k, v in decide(audience(small, quota=2)).items() if v[2]} == set()
    # four a natural month (older documents): this month's deliveries count, an older one does not
    month_start, _ = quota_window("month", now)  # not `now - 5 minutes`: last month in a month's first minutes
    _other_campaign(db_session, "done", [(ids[4], "delivered", month_start - dt.timedelta(days=9))])
    for _ in range(3):
        _other_campaign(db_session, "done", [(ids[4], "delivered", month_start)])
    assert decide(audience(small, quota=4, period="month"))["客户4"][2] is None
    _other_campaign(db_session, "done", [(ids[4], "delivered", month_start + dt.timedelta(seconds=1))])
    assert decide(audience(small, quota=4, period="month"))["客户4"][2] == "quota"


def test_quota_window_is_the_china_day_or_month() -> None:
    moment = dt.datetime(2026, 12, 4, 17, 30, tzinfo=UTC)  # 01:30 on 5 December in China
    assert quota_window("day", moment) == (dt.datetime(2026, 12, 4, 16, 0, tzinfo=UTC),
                                           dt.datetime(2026, 12, 5, 16, 0, tzinfo=UTC))
    assert quota_window("month", dt.datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == (
        dt.datetime(2026, 12, 31, 16, 0, tzinfo=UTC), dt.datetime(2027, 1, 31, 16, 0, tzinfo=UTC))


def test_calls_are_cut_per_sender_at_the_limit(db_session: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    base = 1767225600
    people = [Person(f"客户{i}", [("zhangsan" if i < 7 else "lisi", ["VIP"], base)]) for i in range(9)]
    corp = build(db_session, emu, [("zhangsan", "张三"), ("lisi", "李四")], {"等级": ["VIP"]}, people)
    monkeypatch.setattr(planning, "MAX_CUSTOMERS_PER_CALL", 3)
    campaign = service.create(principal(), {"name": "拆分", "filter": {"tag": corp.tags["VIP"]}, "text": "x"})
    campaign.status = "planning"
    db_session.commit()
    assert service.preview(principal(), {"filter": {"tag": corp.tags["VIP"]}})["calls"] == 4
    assert plan(campaign.id, planning.audience_of(campaign, utcnow()))
    ranges = task_ranges(campaign.id, 3)
    ids = sorted(corp.ids.values())
    assert [(s, q, n) for s, q, _, _, n in ranges] == [("lisi", 0, 2), ("zhangsan", 0, 3), ("zhangsan", 1, 3),
                                                       ("zhangsan", 2, 1)]
    assert [(first, last) for s, _, first, last, _ in ranges if s == "zhangsan"] == [
        (ids[0], ids[2]), (ids[3], ids[5]), (ids[6], ids[6])]
    # planned now, in flight: another campaign to the same customers today would be over the quota
    assert service.preview(principal(), {"filter": {"tag": corp.tags["VIP"]}})["excluded"]["quota"] == 9


def test_chunks_resume_after_a_crash_and_equal_the_preview(db_session: Any, small: Corp,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    preview = service.preview(principal(), {"filter": {"tag": small.tags["VIP"]}})
    assert preview["count"] == 5 and preview["senders"] == 3 and preview["calls"] == 3
    campaign = service.create(principal(), {"name": "分批", "filter": {"tag": small.tags["VIP"]}, "text": "x"})
    campaign.status = "planning"
    db_session.commit()
    monkeypatch.setattr(planning, "CHUNK", 2)
    real = planning.plan_chunk
    calls = {"n": 0}

    def crash_on_second(*args: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args)

    monkeypatch.setattr("campaigns.sending.plan_chunk", crash_on_second)
    with pytest.raises(RuntimeError):
        plan(campaign.id, planning.audience_of(campaign, utcnow()))
    db_session.rollback()
    done_before = db_session.scalar(select(func.count()).select_from(CampaignRecipient))
    assert 0 < done_before < 5 and db_session.get(Campaign, campaign.id).progress["done"] == 1
    monkeypatch.setattr("campaigns.sending.plan_chunk", real)
    # meanwhile the first customer left: the chunks are cut anew from the cursor, nobody planned twice
    db_session.execute(update(FollowRelation).where(FollowRelation.customer_id == small.ids[small.ext(0)])
                       .values(status="lost"))
    db_session.commit()
    assert plan(campaign.id, planning.audience_of(campaign, utcnow()))
    rows = dict(db_session.execute(select(CampaignRecipient.target, CampaignRecipient.sender_userid)).tuples().all())
    assert len(rows) == 5 and rows[small.ext(4)] == "wangwu"
    assert sorted(preview["per_sender"], key=lambda s: s["userid"]) == [
        {"userid": u, "name": n, "count": sum(1 for s in rows.values() if s == u)}
        for u, n in (("lisi", "李四"), ("wangwu", "王五"), ("zhangsan", "张三"))]


def test_a_manager_plans_within_their_team(db_session: Any, small: Corp) -> None:
    db_session.execute(update(Staff).where(Staff.userid == "wangwu").values(department_ids=[2]))
    db_session.add(Staff(corp_id=TEST_CORP_ID, userid="laowang", name="老王", department_ids=[1]))
    db_session.commit()
    manager = principal("manager", "laowang")
    campaign = service.create(manager, {"name": "团队", "filter": {"tag": small.tags["VIP"]}, "text": "x"})
    assert sorted(campaign.scope_userids or []) == ["laowang", "lisi", "xiaomei", "zhangsan"]
    decided = decide(planning.audience_of(campaign, utcnow()))
    assert decided == {"客户0": ("zhangsan", "planned", None), "客户1": ("zhangsan", "planned", None),
                       "客户2": ("lisi", "planned", None), "客户4": ("zhangsan", "planned", None)}


def test_settings_change_the_quota(db_session: Any, small: Corp) -> None:
    service.save_settings(TEST_CORP_ID, "xiaomei", quota_count=4, quota_period="month", follow_days=5)
    db_session.commit()
    row = db_session.scalar(select(CampaignSettings))
    assert (row.quota_count, row.quota_period, row.follow_days) == (4, "month", 5)
    for bad in ({"quota_count": 0}, {"quota_period": "week"}, {"follow_days": 31}):
        values = {"quota_count": 1, "quota_period": "day", "follow_days": 3, **bad}
        with pytest.raises(Exception) as caught:
            service.save_settings(TEST_CORP_ID, "xiaomei", **values)
        assert caught.value.fields  # type: ignore[attr-defined]
