"""Names, not codes: the sidebar's 来源, the segment builder, the console's labels show the channel's name;
a State no channel knows is listed on the channels page and can be named."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from crm.models import FollowRelation
from tests.channels.conftest import Corp, deliver_add, send_all
from tests.helpers import TEST_CORP_ID, sign_in


def test_the_channel_name_is_shown_instead_of_its_state(app: Any, client: Any, db_session: Any, emu: Any, corp: Corp,
                                                        marketer: dict[str, str]) -> None:
    created = client.post("/api/v1/channels", json={"name": "门店扫码", "users": ["zhangsan"]}, headers=marketer).get_json()
    send_all(app)
    ext = deliver_add(emu, "zhangsan", "李女士", created["state"])
    send_all(app)

    sign_in(client, "zhangsan")
    html = client.get(f"/sidebar/customer/{ext}").get_data(as_text=True)
    assert "门店扫码" in html and created["state"] not in html.split('id="channel">')[1][:80]

    from identity.service import set_role

    set_role(TEST_CORP_ID, "xiaomei", "marketer", "test")
    db_session.commit()
    sign_in(client, "xiaomei")
    builder = client.get("/console/segments/new").get_data(as_text=True)
    assert "门店扫码" in builder
    with app.test_request_context():
        from console.labels import channel_names

        assert channel_names(TEST_CORP_ID)[created["state"]] == "门店扫码"


def test_an_unknown_state_is_listed_and_can_be_named(app: Any, client: Any, db_session: Any, corp: Corp,
                                                    marketer: dict[str, str]) -> None:
    db_session.execute(update(FollowRelation).values(state="zhanhui2024"))
    db_session.commit()
    listing = client.get("/api/v1/channels", headers=marketer).get_json()
    assert listing["unknown_states"] == [{"state": "zhanhui2024", "relations": 1}]

    from identity.service import set_role

    set_role(TEST_CORP_ID, "xiaomei", "marketer", "test")
    db_session.commit()
    sign_in(client, "xiaomei")
    page = client.get("/console/channels/").get_data(as_text=True)
    assert "未命名的渠道标识" in page and "zhanhui2024" in page

    named = client.post("/api/v1/channels/states", json={"state": "zhanhui2024", "name": "2024 展会"}, headers=marketer)
    assert named.status_code == 200, named.get_data(as_text=True)
    assert client.get("/api/v1/channels", headers=marketer).get_json()["unknown_states"] == []
    report = client.get("/api/v1/reports/channels?from=2025-12-01&to=2026-01-31", headers=marketer).get_json()
    assert [r["name"] for r in report["channels"]] == ["2024 展会"]


def test_an_adopted_state_gets_its_own_welcome_and_tags(app: Any, client: Any, db_session: Any, emu: Any,
                                                        corp: Corp, marketer: dict[str, str]) -> None:
    adopted = client.post("/api/v1/channels/states", json={"state": "houtai01", "name": "后台活码", "adopt": True},
                          headers=marketer).get_json()
    assert adopted["channel_id"]
    path = f"/api/v1/channels/{adopted['channel_id']}"
    assert client.patch(path, json={"users": ["lisi"]}, headers=marketer).status_code == 422  # WeCom's console owns them
    changed = client.patch(path, json={"welcome_text": "欢迎从后台活码来", "tag_ids": [corp.tags["展会客户"]]},
                           headers=marketer).get_json()
    assert changed["sync_label"] == "二维码在企业微信后台管理" and changed["config_id"] is None
    ext = deliver_add(emu, "lisi", "赵先生", "houtai01")
    send_all(app)
    assert any("欢迎从后台活码来" in str(m) for m in emu.state.welcome_messages if m["external_userid"] == ext)
    assert corp.tags["展会客户"] in emu.state.relation("lisi", ext).tags
    assert client.delete(path, headers=marketer).get_json()["status"] == "retired"
    send_all(app)
    assert emu.call_count("/cgi-bin/externalcontact/del_contact_way") == 0
