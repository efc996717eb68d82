"""Channel alerts: each condition sends the owner one app message, once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update

from channels.alerts import SETTINGS_KEY, check_alerts
from channels.models import Channel, ChannelAlert
from core.db import utcnow
from crm.models import Customer, FollowRelation, Staff
from tagging.lifecycle.stages import put_setting
from tests.channels.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID


def _channel(client: Any, app: Any, headers: dict[str, str], users: list[str]) -> dict[str, Any]:
    created = client.post("/api/v1/channels", json={"name": "地推", "users": users, "owner_userid": "xiaomei"},
                          headers=headers).get_json()
    send_all(app)
    return dict(created)


def test_each_condition_fires_once_to_the_owner(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                                marketer: dict[str, str]) -> None:
    created = _channel(client, app, marketer, ["zhangsan", "lisi"])
    now = utcnow()
    db_session.execute(update(Channel).values(created_at=now - dt.timedelta(days=10)))
    # 25 customers came through it 10 days ago; 10 of them left within two days
    rows = [{"corp_id": TEST_CORP_ID, "external_userid": f"wmloss{i:04d}", "name": f"客户{i}"} for i in range(25)]
    db_session.execute(insert(Customer), rows)
    ids = db_session.scalars(select(Customer.id).where(Customer.external_userid.like("wmloss%"))).all()
    added = now - dt.timedelta(days=10)
    db_session.execute(insert(FollowRelation), [
        {"corp_id": TEST_CORP_ID, "customer_id": cid, "userid": "lisi", "state": created["state"], "added_at": added,
         "status": "lost" if i < 10 else "active", "lost_at": added + dt.timedelta(days=2) if i < 10 else None,
         "lost_reason": "del_follow_user" if i < 10 else None} for i, cid in enumerate(ids)])
    db_session.execute(update(Staff).where(Staff.userid == "zhangsan").values(status="resigned"))
    put_setting(TEST_CORP_ID, SETTINGS_KEY, {"customer_limit": 16, "no_new_days": 7}, "test")
    db_session.commit()

    fired = check_alerts(TEST_CORP_ID, now)
    db_session.commit()
    assert sorted(a.kind for a in fired) == ["loss_rate", "near_limit", "no_new", "resigned"]
    assert all(a.notified == ["xiaomei"] for a in fired)
    assert check_alerts(TEST_CORP_ID, now + dt.timedelta(hours=1)) == []  # once per condition
    db_session.commit()
    send_all(app)
    messages = [m for m in emu.state.messages if "渠道活码预警" in str(m)]
    assert len(messages) == 4
    assert db_session.scalar(select(ChannelAlert.message).where(ChannelAlert.kind == "loss_rate")).count("40%") == 1


def test_a_busy_channel_raises_nothing(app: Any, client: Any, db_session: Any, corp: Corp,
                                       marketer: dict[str, str]) -> None:
    created = _channel(client, app, marketer, ["lisi"])
    db_session.execute(update(FollowRelation).values(state=created["state"], added_at=utcnow() - dt.timedelta(days=1)))
    db_session.commit()
    assert check_alerts(TEST_CORP_ID) == []


def test_a_resignation_alerts_at_once_and_only_once(app: Any, client: Any, db_session: Any, corp: Corp,
                                                    marketer: dict[str, str]) -> None:
    from core.signals import StaffResigned, staff_resigned

    _channel(client, app, marketer, ["zhangsan"])
    staff_resigned.send(StaffResigned(TEST_CORP_ID, "zhangsan"))  # as crm announces a contact callback
    db_session.execute(update(Staff).where(Staff.userid == "zhangsan").values(status="resigned"))
    db_session.commit()
    alerts = db_session.scalars(select(ChannelAlert)).all()
    assert [(a.kind, a.key, a.notified) for a in alerts] == [("resigned", "zhangsan", ["xiaomei"])]
    assert [a.kind for a in check_alerts(TEST_CORP_ID)] == []  # the hourly check does not repeat it
