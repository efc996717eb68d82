"""The issue's first acceptance test, end to end: a channel created over the API produces an
add_contact_way in the emulator; a customer added through it (a callback with that State and a
WelcomeCode) gets the channel's welcome message once, the channel's tags in WeCom, and is counted under
the channel in the report."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select

from channels.models import Channel
from crm.models import WelcomeMessage
from tests.channels.conftest import Corp, deliver_add, send_all


def _create(client: Any, headers: dict[str, str], corp: Corp, **extra: Any) -> dict[str, Any]:
    body = {"name": "2026 上海展会", "users": ["zhangsan"], "welcome_text": "{customer_name}您好，欢迎来到展会！我是{staff_name}",
            "tag_ids": [corp.tags["展会客户"]], "cost": 1200, **extra}
    answer = client.post("/api/v1/channels", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return dict(answer.get_json())


def test_a_channel_brings_its_welcome_its_tags_and_its_count(app: Any, client: Any, db_session: Any, emu: Any,
                                                             corp: Corp, marketer: dict[str, str]) -> None:
    created = _create(client, marketer, corp)
    assert created["status"] == "pending" and len(created["state"]) <= 30 and created["qr_code"] is None
    send_all(app)
    ways = list(emu.state.contact_ways.values())
    assert len(ways) == 1
    assert ways[0]["state"] == created["state"] and ways[0]["user"] == ["zhangsan"] and ways[0]["type"] == 1
    channel = client.get(f"/api/v1/channels/{created['id']}", headers=marketer).get_json()
    assert channel["status"] == "active" and channel["config_id"] == ways[0]["config_id"]
    qr = client.get(f"/api/v1/channels/{created['id']}/qrcode", headers=marketer).get_json()
    assert qr["qr_code"] == ways[0]["qr_code"]

    ext = deliver_add(emu, "zhangsan", "王先生", created["state"])
    send_all(app)  # the add event, its welcome message, the arrival-tag rule and its mark_tag
    sent = [m for m in emu.state.welcome_messages if m["external_userid"] == ext]
    assert len(sent) == 1
    assert "王先生您好，欢迎来到展会！我是张三" in str(sent[0])
    assert corp.tags["展会客户"] in emu.state.relation("zhangsan", ext).tags

    send_all(app)  # nothing more: one welcome
    assert len([m for m in emu.state.welcome_messages if m["external_userid"] == ext]) == 1

    report = client.get("/api/v1/reports/channels", headers=marketer).get_json()
    row = next(r for r in report["channels"] if r["state"] == created["state"])
    assert row["name"] == "2026 上海展会" and row["added"] == 1 and row["lost"] == 0
    assert row["channel_id"] == created["id"] and row["cost"] == "1200.00"

    answer = client.get("/api/v1/reports/channels.csv", headers=marketer)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "渠道" and any(r[0] == "2026 上海展会" and r[2] == "1" for r in rows[1:])


def test_pause_resume_and_retire(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                 marketer: dict[str, str]) -> None:
    created = _create(client, marketer, corp)
    send_all(app)
    state = created["state"]
    paused = client.patch(f"/api/v1/channels/{created['id']}", json={"status": "paused"}, headers=marketer).get_json()
    assert paused["status"] == "paused"
    assert db_session.scalar(select(WelcomeMessage).where(WelcomeMessage.state == state)) is None
    ext = deliver_add(emu, "zhangsan", "暂停期间", state)
    send_all(app)
    assert corp.tags["展会客户"] not in emu.state.relation("zhangsan", ext).tags  # the rule is off
    welcome = next(m for m in emu.state.welcome_messages if m["external_userid"] == ext)
    assert "欢迎来到展会" not in str(welcome)  # the corp's default welcome instead

    resumed = client.patch(f"/api/v1/channels/{created['id']}", json={"status": "active", "users": ["zhangsan", "lisi"]},
                           headers=marketer)
    assert resumed.status_code == 422  # a single-member way cannot become a multi-member one
    resumed = client.patch(f"/api/v1/channels/{created['id']}", json={"status": "active", "name": "展会（改名）"},
                           headers=marketer).get_json()
    assert resumed["status"] == "active"
    send_all(app)
    assert next(iter(emu.state.contact_ways.values()))["remark"] == "展会（改名）"

    retired = client.delete(f"/api/v1/channels/{created['id']}", headers=marketer).get_json()
    assert retired["status"] == "retired"
    send_all(app)
    assert emu.state.contact_ways == {}
    db_session.expire_all()
    assert db_session.get(Channel, created["id"]).sync_state == "done"
    report = client.get("/api/v1/reports/channels", headers=marketer).get_json()
    assert any(r["name"] == "展会（改名）" and r["added"] == 1 for r in report["channels"])


def test_bad_input_is_refused_naming_the_field(client: Any, corp: Corp, marketer: dict[str, str]) -> None:
    for body, field in (({"name": "x", "users": ["nobody"]}, "users"), ({"name": "x", "users": []}, "users"),
                        ({"name": "x", "users": ["zhangsan"], "tag_ids": ["etnope"]}, "tag_ids"),
                        ({"name": "x", "users": ["zhangsan"], "kind": "join"}, "users"),
                        ({"name": "x", "users": ["zhangsan"], "kind": "poster"}, "kind"),
                        ({"name": "", "users": ["zhangsan"]}, "name")):
        answer = client.post("/api/v1/channels", json=body, headers=marketer)
        assert answer.status_code == 422, (body, answer.get_data(as_text=True))
        assert field in answer.get_json()["error"]["fields"], answer.get_json()


def test_staff_may_not_manage_channels(client: Any, db_session: Any, corp: Corp) -> None:
    from tests.tagging.conftest import token

    staff = token(db_session, "staff", "zhangsan", name="staff")
    assert client.get("/api/v1/channels", headers=staff).status_code == 403
