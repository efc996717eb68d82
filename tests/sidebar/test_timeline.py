"""The 360° view in the sidebar: the value tier, the stage with how long the customer has been in it, a
30-day summary, and one timeline of follow-ups and behaviour events, newest first, a page at a time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.helpers import TEST_CORP_ID, sign_in

UTC = dt.timezone.utc


def _customer(db_session: Any) -> Any:
    from crm.models import Customer, FollowRelation, Staff

    db_session.add(Staff(corp_id=TEST_CORP_ID, userid="zhangsan", name="张三", department_ids=[1]))
    c = Customer(corp_id=TEST_CORP_ID, external_userid="wm-360", name="王小二", stage="意向客户")
    db_session.add(c)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan",
                                  added_at=dt.datetime.now(UTC) - dt.timedelta(days=60)))
    db_session.commit()
    return c


def _events(db_session: Any, c: Any, now: dt.datetime) -> None:
    from tagging.lifecycle.events import store_events

    events = [{"id": f"pv{i}", "type": "page_view", "external_userid": c.external_userid,
               "at": (now - dt.timedelta(days=i, hours=1)).isoformat(), "properties": {"path": "/pricing", "title": "价格说明"}}
              for i in range(3)]
    events += [{"id": "o1", "type": "order", "external_userid": c.external_userid,
                "at": (now - dt.timedelta(days=2)).isoformat(), "properties": {"amount": 1280, "product": "专业版"}},
               {"id": "old", "type": "order", "external_userid": c.external_userid,
                "at": (now - dt.timedelta(days=45)).isoformat(), "properties": {"amount": 99}},
               {"id": "f1", "type": "form", "external_userid": c.external_userid,
                "at": (now - dt.timedelta(days=40)).isoformat(), "properties": {"form_name": "预约演示"}}]
    assert store_events(TEST_CORP_ID, events, "test")["stored"] == 6
    db_session.commit()


def test_profile_carries_tier_stage_duration_and_summary(client: Any, db_session: Any) -> None:
    from crm.models import StageChange
    from crm.service import write_followup
    from tagging.lifecycle.tiers import compute_tiers

    now = dt.datetime.now(UTC)
    c = _customer(db_session)
    db_session.add(StageChange(corp_id=TEST_CORP_ID, customer_id=c.id, from_stage=None, to_stage="意向客户",
                               actor="zhangsan", at=now - dt.timedelta(days=12, hours=1)))
    _events(db_session, c, now)
    write_followup(c, "zhangsan", "电话沟通", None, "zhangsan")
    compute_tiers(TEST_CORP_ID)
    db_session.commit()
    sign_in(client, "zhangsan")
    body = client.get(f"/api/v1/customers/{c.external_userid}").get_json()
    assert body["stage"] == "意向客户" and body["stage_days"] == 12
    assert body["tier"]["name"] == "高价值" and body["tier"]["orders"] == 2 and body["tier"]["amount"] == "¥1,379.00"
    assert body["summary"]["text"] == "近30天：3 次访问，1 笔订单（¥1,280.00），1 次跟进"
    assert body["summary"]["order_amount"] == "¥1,280.00"
    html = client.get(f"/sidebar/customer/{c.external_userid}").get_data(as_text=True)
    assert "已 12 天" in html and 'data-tier="高价值"' in html and "近30天：3 次访问" in html


def test_timeline_merges_notes_and_events_newest_first_in_pages(client: Any, db_session: Any) -> None:
    from crm.service import write_followup

    now = dt.datetime.now(UTC)
    c = _customer(db_session)
    _events(db_session, c, now)
    note = write_followup(c, "zhangsan", "发了报价单", None, "zhangsan")
    note.created_at = now - dt.timedelta(days=1, hours=12)
    db_session.commit()
    sign_in(client, "zhangsan")
    first = client.get(f"/api/v1/customers/{c.external_userid}/timeline", query_string={"limit": 3}).get_json()
    assert [i["type"] for i in first["items"]] == ["page_view", "page_view", "followup"]
    assert first["items"][2] == {**first["items"][2], "title": "跟进记录", "detail": "发了报价单", "name": "张三"}
    assert first["items"][0]["detail"] == "价格说明" and first["next_cursor"]
    rest = client.get(f"/api/v1/customers/{c.external_userid}/timeline",
                      query_string={"cursor": first["next_cursor"], "limit": 3}).get_json()
    assert [i["type"] for i in rest["items"]] == ["order", "page_view", "form"]
    assert rest["items"][0]["detail"] == "¥1,280.00 · 专业版" and rest["items"][0]["title"] == "下单"
    last = client.get(f"/api/v1/customers/{c.external_userid}/timeline",
                      query_string={"cursor": rest["next_cursor"], "limit": 3}).get_json()
    assert [i["detail"] for i in last["items"]] == ["¥99.00"] and last["next_cursor"] == ""
    seen = [i["id"] for page in (first, rest, last) for i in page["items"]]
    assert len(seen) == len(set(seen)) == 7
    bad = client.get(f"/api/v1/customers/{c.external_userid}/timeline", query_string={"cursor": "x"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_cursor"


def test_same_moment_notes_and_events_are_neither_lost_nor_repeated(client: Any, db_session: Any) -> None:
    from crm.models import FollowUp
    from tagging.lifecycle.events import store_events

    c = _customer(db_session)
    moment = dt.datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    store_events(TEST_CORP_ID, [{"id": f"same{i}", "type": "page_view", "external_userid": c.external_userid,
                                 "at": moment.isoformat()} for i in range(3)], "test")
    db_session.add_all([FollowUp(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan", content=f"n{i}",
                                 created_at=moment) for i in range(3)])
    db_session.commit()
    sign_in(client, "zhangsan")
    seen, cursor = [], ""
    while True:
        page = client.get(f"/api/v1/customers/{c.external_userid}/timeline",
                          query_string={"cursor": cursor, "limit": 2}).get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6


def test_a_customer_with_nothing_yet_says_so(client: Any, db_session: Any) -> None:
    c = _customer(db_session)
    sign_in(client, "zhangsan")
    body = client.get(f"/api/v1/customers/{c.external_userid}").get_json()
    assert body["summary"]["text"] == "近30天：没有互动" and body["tier"] is None and body["stage_days"] is None
    html = client.get(f"/sidebar/customer/{c.external_userid}").get_data(as_text=True)
    assert "还没有跟进记录，也没有收到这位客户的浏览、下单等行为" in html
