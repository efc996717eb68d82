"""Routing by schedule: the code routes to the staff on duty (China time), and the job updates the way in
WeCom when the duty changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from channels.models import Channel
from channels.service import reroute_due, routed_users
from core.time import CHINA
from tests.channels.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID


def _at(hour: int) -> dt.datetime:  # a Monday, China time
    return dt.datetime(2026, 12, 7, hour, 0, tzinfo=CHINA).astimezone(dt.timezone.utc)


def test_the_code_follows_the_duty_roster(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                          marketer: dict[str, str]) -> None:
    schedule = [{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00", "users": ["lisi"]}]
    bad = client.post("/api/v1/channels", json={"name": "客服", "users": ["zhangsan"],
                                                "schedule": [{"start": "18:00", "end": "09:00", "users": ["lisi"]}]},
                      headers=marketer)
    assert bad.status_code == 422 and "schedule" in bad.get_json()["error"]["fields"]
    created = client.post("/api/v1/channels", json={"name": "客服", "users": ["zhangsan"], "schedule": schedule},
                          headers=marketer).get_json()
    assert created["multi"] is True
    send_all(app)
    channel = db_session.get(Channel, created["id"])
    assert routed_users(channel, _at(10)) == ["lisi"] and routed_users(channel, _at(20)) == ["zhangsan"]
    channel.routed_users = []  # whatever the clock said at creation, the next run reroutes
    assert reroute_due(TEST_CORP_ID, _at(10)) == 1
    db_session.commit()
    send_all(app)
    assert next(iter(emu.state.contact_ways.values()))["user"] == ["lisi"]
    assert reroute_due(TEST_CORP_ID, _at(11)) == 0  # no change, no call
    assert reroute_due(TEST_CORP_ID, _at(19)) == 1
    db_session.commit()
    send_all(app)
    assert next(iter(emu.state.contact_ways.values()))["user"] == ["zhangsan"]
