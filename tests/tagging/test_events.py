"""POST /api/v1/events: batches, idempotency by (corp, id), per-event errors, scope, hooks, the timeline."""

from __future__ import annotations

from typing import Any

from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import Base, token


def batch() -> list[dict[str, Any]]:
    return [
        {"id": "pv-1", "external_userid": "wm_a", "type": "page_view", "at": "2026-11-20T10:00:00+08:00",
         "properties": {"url": "https://shop.example/products/A/1?x=1"}},
        {"id": "pv-2", "unionid": "union_b", "type": "page_view", "at": "2026-11-20T11:00:00",
         "properties": {"path": "/products/A/2"}},
        {"id": "ord-1", "external_userid": "wm_c", "type": "order", "at": 1795000000,
         "properties": {"amount": "199.90", "order_no": "N1"}},
        {"id": "x-1", "external_userid": "wm_nobody", "type": "page_view"},
        {"id": "bad-1", "external_userid": "wm_a", "type": "Page View"},
        {"id": "ord-2", "external_userid": "wm_a", "type": "order", "properties": {}},
        {"id": "pv-1", "external_userid": "wm_a", "type": "page_view"},
    ]


def test_batch_is_stored_once_with_per_event_results(base: Base, client: Any, db_session: Any) -> None:
    from tagging.lifecycle.models import BehaviorEvent

    headers = token(db_session, "marketer")
    answer = client.post("/api/v1/events", json=batch(), headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        ("pv-1", "stored"), ("pv-2", "stored"), ("ord-1", "stored"), ("x-1", "unknown_customer"),
        ("bad-1", "invalid"), ("ord-2", "invalid"), ("pv-1", "duplicate")]
    assert (body["stored"], body["duplicates"], body["rejected"]) == (3, 1, 3)
    assert "amount" in body["results"][5]["error"]
    rows = {e.event_id: e for e in db_session.query(BehaviorEvent)}
    assert set(rows) == {"pv-1", "pv-2", "ord-1"}
    assert rows["pv-1"].path == "/products/A/1" and rows["pv-1"].at.hour == 2  # 10:00 China = 02:00 UTC
    assert rows["pv-2"].customer_id == base.customers["b"].id and rows["pv-2"].at.hour == 3  # naive = China time
    assert str(rows["ord-1"].amount) == "199.90" and rows["ord-1"].source == "token:test-marketer-x"
    # the same batch again changes nothing and says so
    again = client.post("/api/v1/events", json={"events": batch()}, headers=headers).get_json()
    assert (again["stored"], again["duplicates"]) == (0, 4)
    assert db_session.query(BehaviorEvent).count() == 3


def test_batch_limits_and_auth(base: Base, client: Any, db_session: Any) -> None:
    headers = token(db_session, "admin")
    too_many = [{"id": f"e{i}", "external_userid": "wm_a", "type": "page_view"} for i in range(1001)]
    answer = client.post("/api/v1/events", json=too_many, headers=headers)
    assert answer.status_code == 422 and "1000" in answer.get_json()["error"]["message"]
    assert client.post("/api/v1/events", json={"oops": 1}, headers=headers).status_code == 422
    assert client.post("/api/v1/events", json=[]).status_code == 401
    staff = token(db_session, "staff", "zhangsan")
    assert client.post("/api/v1/events", json=[], headers=staff).status_code == 403
    # a full batch of 1000 events with properties fits (the request size limit is raised for this endpoint)
    full = [{"id": f"big{i}", "external_userid": "wm_a", "type": "page_view",
             "properties": {"path": f"/p/{i}", "title": "产品介绍" * 20}} for i in range(1000)]
    big = client.post("/api/v1/events", json=full, headers=headers)
    assert big.status_code == 200 and big.get_json()["stored"] == 1000


def test_manager_token_reaches_only_customers_in_scope(base: Base, client: Any, db_session: Any) -> None:
    from identity.service import set_role

    set_role(TEST_CORP_ID, "wangwu", "manager", granted_by="test")  # dept 2: only himself
    db_session.commit()
    headers = token(db_session, "manager", "wangwu")
    body = client.post("/api/v1/events", json=[
        {"id": "m1", "external_userid": "wm_c", "type": "form"},
        {"id": "m2", "external_userid": "wm_a", "type": "form"}], headers=headers).get_json()
    assert [r["status"] for r in body["results"]] == ["stored", "unknown_customer"]


def test_stored_events_are_announced_and_event_rules_wait_for_the_worker(base: Base, app: Any,
                                                                          db_session: Any) -> None:
    from core.models import Task
    from core.signals import EventsReceived, events_received
    from tagging.lifecycle.events import store_events
    from tagging.rules.service import save_rule

    seen: list[EventsReceived] = []
    events_received.connect(seen.append)
    try:
        result = store_events(TEST_CORP_ID, batch()[:3], "token:t")
        db_session.commit()
        assert result["stored"] == 3
        assert [(e.corp_id, sorted(e.customer_ids), e.types) for e in seen] == [
            (TEST_CORP_ID, sorted(base.customers[n].id for n in "abc"), ("order", "page_view"))]
        assert db_session.query(Task).count() == 0  # no event rule: nothing queued for nobody
        save_rule(TEST_CORP_ID, "admin1", {"name": "看了就记", "trigger": "event",
                                           "actions": [{"notify": "{customer_name} 看了页面"}]})
        store_events(TEST_CORP_ID, [{"id": "pv-9", "external_userid": "wm_a", "type": "page_view"}], "token:t")
        db_session.commit()
    finally:
        events_received.disconnect(seen.append)
    (task,) = db_session.query(Task).all()  # the rule runs in the worker, not in the request that stored events
    assert task.kind == "rules.fire" and task.status == "pending"
    assert task.payload["trigger"] == "event" and task.payload["customer_ids"] == [base.customers["a"].id]


def test_recent_events_for_the_timeline(base: Base, db_session: Any) -> None:
    from tagging.lifecycle.events import recent_events, store_events

    store_events(TEST_CORP_ID, batch(), "token:t")
    db_session.commit()
    timeline = recent_events(TEST_CORP_ID, base.customers["a"].id)
    assert [e["id"] for e in timeline] == ["pv-1"]
    assert recent_events(TEST_CORP_ID, base.customers["c"].id, types=["order"])[0]["amount"] == "199.90"


def test_events_feed_the_segment_event_node(base: Base, client: Any, db_session: Any) -> None:
    from core.db import utcnow

    headers = token(db_session, "admin")
    now = utcnow()
    views = [{"id": f"v{i}", "external_userid": "wm_a", "type": "page_view",
              "at": (now.replace(microsecond=0)).isoformat(), "properties": {"path": f"/products/A/{i}"}}
             for i in range(3)]
    client.post("/api/v1/events", json=views, headers=headers)
    hot = {"event": {"type": "page_view", "path_prefix": "/products/A", "min_count": 3, "within_days": 3}}
    body = client.post("/api/v1/segments/preview", json={"filter": hot}, headers=headers).get_json()
    assert body["count"] == 1 and body["sample"][0]["external_userid"] == "wm_a"
