"""The contact way in WeCom through the outbox: an add whose answer is lost is found in WeCom (never made
twice); one WeCom never got is sent again; one WeCom refuses marks the channel failed in plain words."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from channels import ways
from channels.models import Channel
from tests.campaigns.conftest import due_now
from tests.channels.conftest import Corp, send_all
from wecom.client import contact_client

ADD = "/cgi-bin/externalcontact/add_contact_way"


def _create(client: Any, headers: dict[str, str]) -> int:
    answer = client.post("/api/v1/channels", json={"name": "官网", "users": ["zhangsan", "lisi"]}, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return int(answer.get_json()["id"])


def test_a_lost_answer_is_found_in_wecom_not_sent_twice(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                                        marketer: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    channel_id = _create(client, marketer)
    contact_client().timeout = 0.5
    try:
        emu.faults.add(path=ADD, delay=1.2, times=1)  # WeCom creates it, but answers after our read timeout
        send_all(app, retry_base=60)
    finally:
        contact_client().timeout = 5.0
    time.sleep(1.0)
    assert len(emu.state.contact_ways) == 1
    monkeypatch.setattr(ways, "RECONCILE_SETTLE", dt.timedelta(0))
    due_now(db_session)
    send_all(app)
    assert emu.call_count(ADD) == 1 and len(emu.state.contact_ways) == 1
    db_session.expire_all()
    channel = db_session.get(Channel, channel_id)
    way = next(iter(emu.state.contact_ways.values()))
    assert channel.status == "active" and channel.config_id == way["config_id"] and channel.qr_code == way["qr_code"]
    assert way["type"] == 2 and way["user"] == ["zhangsan", "lisi"]


def test_a_send_wecom_never_got_is_sent_again(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                              marketer: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    channel_id = _create(client, marketer)
    emu.faults.add(path=ADD, http_status=502, times=1)
    send_all(app, retry_base=60)
    monkeypatch.setattr(ways, "RECONCILE_SETTLE", dt.timedelta(0))
    due_now(db_session)
    send_all(app)
    assert len(emu.state.contact_ways) == 1
    db_session.expire_all()
    assert db_session.get(Channel, channel_id).status == "active"


def test_a_refusal_marks_the_channel_failed(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                           marketer: dict[str, str]) -> None:
    channel_id = _create(client, marketer)
    emu.faults.add(path=ADD, errcode=41054, times=1)
    send_all(app)
    db_session.expire_all()
    channel = db_session.get(Channel, channel_id)
    assert channel.status == "failed" and "41054" in (channel.last_error or "")
    page = client.get(f"/api/v1/channels/{channel_id}", headers=marketer).get_json()
    assert page["status_label"] == "创建失败"
