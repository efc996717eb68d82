"""§8 tickets and OAuth, §9.1 contact ways, §13.2 media, the control API, seeding, and how to run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.emulator.conftest import CORP_ID, Api, make_emulator
from wecom.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]


def test_jsapi_tickets(emulator: Emulator) -> None:
    contact, agent = Api(emulator, "contact"), Api(emulator, "agent")
    corp = agent.get("get_jsapi_ticket")
    assert corp["errcode"] == 0 and corp["expires_in"] == 7200 and len(corp["ticket"]) <= 512
    assert agent.get("get_jsapi_ticket")["ticket"] == corp["ticket"]
    app = agent.get("ticket/get", type="agent_config")
    assert app["errcode"] == 0 and app["ticket"] != corp["ticket"]
    assert contact.get("ticket/get", type="agent_config")["errcode"] == 42012
    assert agent.get("ticket/get")["errcode"] == 40058
    emulator.clock.advance(7200)
    assert agent.get("ticket/get", type="agent_config")["ticket"] != app["ticket"]


def test_oauth_code_and_getuserinfo(emulator: Emulator) -> None:
    emulator.act.add_staff("alice", "张三")
    api = Api(emulator, "agent")
    code = emulator.oauth_code("alice")
    assert api.get("auth/getuserinfo", code=code) == {"errcode": 0, "errmsg": "ok", "userid": "alice"}
    assert api.get("auth/getuserinfo", code=code)["errcode"] == 40029  # single use
    assert api.get("auth/getuserinfo")["errcode"] == 41008
    late = emulator.oauth_code("alice")
    emulator.clock.advance(301)
    api._token = None
    assert api.get("auth/getuserinfo", code=late)["errcode"] == 40029


def test_authorize_pages_redirect_with_code_and_state(emulator: Emulator) -> None:
    emulator.act.add_staff("alice", "张三")
    api = Api(emulator, "agent")
    redirect = "http://127.0.0.1:5000/sidebar/login?next=%2Fsidebar"
    for path in ("/connect/oauth2/authorize", "/wwlogin/sso/login"):
        params = {"appid": CORP_ID, "redirect_uri": redirect, "response_type": "code", "scope": "snsapi_base",
                  "state": "abc123", "agentid": "1000002"}
        page = requests.get(emulator.url + path, params=params, timeout=5)
        assert page.status_code == 200 and "张三" in page.text and "userid=alice" in page.text
        resp = requests.get(emulator.url + path, params={**params, "userid": "alice"}, allow_redirects=False, timeout=5)
        assert resp.status_code == 302
        location = resp.headers["Location"]
        assert location.startswith("http://127.0.0.1:5000/sidebar/login?next=%2Fsidebar&code=")
        code = location.split("code=")[1].split("&")[0]
        assert location.endswith("&state=abc123")
        assert api.get("auth/getuserinfo", code=code)["userid"] == "alice"
    refused = requests.get(emulator.url + "/wwlogin/sso/login", params={"appid": CORP_ID, "redirect_uri": redirect,
                                                                        "state": "s", "refuse": "1"},
                           allow_redirects=False, timeout=5)
    assert refused.status_code == 302 and "code=" not in refused.headers["Location"]
    bad = requests.get(emulator.url + "/connect/oauth2/authorize", params={"appid": "wwother", "redirect_uri": redirect},
                       timeout=5)
    assert bad.status_code == 400


def test_contact_ways(api: Api, corp: dict[str, Any], emulator: Emulator) -> None:
    body = {"type": 1, "scene": 2, "remark": "展会", "state": "expo2024", "user": ["alice"]}
    created = api.ok("externalcontact/add_contact_way", body)
    assert created["config_id"] and created["qr_code"].startswith("http")
    way = api.ok("externalcontact/get_contact_way", {"config_id": created["config_id"]})["contact_way"]
    assert way["state"] == "expo2024" and way["user"] == ["alice"] and way["qr_code"] == created["qr_code"]
    api.ok("externalcontact/update_contact_way", {"config_id": created["config_id"], "state": "expo2025"})
    assert api.ok("externalcontact/get_contact_way", {"config_id": created["config_id"]})["contact_way"]["state"] == "expo2025"
    assert "qr_code" not in api.ok("externalcontact/add_contact_way", {**body, "scene": 1})
    assert api.code("externalcontact/add_contact_way", {**body, "state": "s" * 31}) == 40058
    assert api.code("externalcontact/add_contact_way", {**body, "user": ["alice", "bob"]}) == 40058
    assert api.code("externalcontact/add_contact_way", {**body, "user": ["ghost"]}) == 60111
    for i in range(101):
        emulator.state.add_member(f"m{i}", "成员", [9])
    assert api.code("externalcontact/add_contact_way", {"type": 2, "scene": 2, "party": [9]}) == 41041
    listed = api.ok("externalcontact/list_contact_way", {"limit": 1})
    assert len(listed["contact_way"]) == 1 and listed["next_cursor"]
    rest = api.ok("externalcontact/list_contact_way", {"limit": 1, "cursor": listed["next_cursor"]})
    assert rest["next_cursor"] == ""
    api.ok("externalcontact/del_contact_way", {"config_id": created["config_id"]})
    assert api.code("externalcontact/get_contact_way", {"config_id": created["config_id"]}) == 40058


def test_media_upload(api: Api) -> None:
    url = api.emu.url + "/cgi-bin/media/upload"

    def upload(kind: str, name: str, data: bytes, field: str = "media") -> dict[str, Any]:
        return requests.post(url, params={"access_token": api.token, "type": kind},
                             files={field: (name, data, "application/octet-stream")}, timeout=5).json()

    ok = upload("image", "a.png", b"\x89PNG" + b"0" * 100)
    assert ok["errcode"] == 0 and ok["type"] == "image" and ok["media_id"] and isinstance(ok["created_at"], str)
    assert upload("image", "a.gif", b"0" * 100)["errcode"] == 40005
    assert upload("image", "a.png", b"12345")["errcode"] == 40006
    assert upload("voice", "a.amr", b"0" * (2 * 1024 * 1024 + 1))["errcode"] == 40006
    assert upload("pdf", "a.pdf", b"0" * 100)["errcode"] == 40004
    assert upload("file", "a.pdf", b"0" * 100, field="file")["errcode"] == 41005
    body = {"external_userid": ["wmx"], "text": {"content": "x"},
            "attachments": [{"msgtype": "image", "image": {"media_id": ok["media_id"]}}]}
    assert api.code("externalcontact/add_msg_template", body) == 41048  # media accepted, no customer
    api.emu.clock.advance(3 * 86400 + 1)
    assert api.code("externalcontact/add_msg_template", body) == 40007  # media expired


def test_control_api_over_http(emulator: Emulator) -> None:
    base = emulator.url + "/emulator"
    assert requests.post(base + "/act/add_staff", json={"userid": "alice", "name": "张三"}, timeout=5).json() == {"result": "alice"}
    ext = requests.post(base + "/act/customer_adds_staff", json={"userid": "alice"}, timeout=5).json()["result"]
    assert ext in emulator.state.customers
    gid, tags = requests.post(base + "/act/corp_tag_group_created", json={"group_name": "g", "tag_names": ["a"]},
                              timeout=5).json()["result"]
    assert emulator.state.tag_groups[gid].tag_ids == tags
    assert requests.post(base + "/act/staff_deletes_customer", json={"userid": "bob", "external_userid": ext},
                         timeout=5).status_code == 400
    assert requests.post(base + "/act/nope", json={}, timeout=5).status_code == 404
    summary = requests.get(base + "/summary", timeout=5).json()
    assert summary == {"staff": 1, "follow_users": 1, "customers": 1, "relations": 1, "tag_groups": 1, "tags": 1,
                       "group_chats": 0}
    requests.post(base + "/faults", json={"path": "/cgi-bin/gettoken", "errcode": 45009}, timeout=5)
    api = Api(emulator)
    assert requests.get(emulator.url + "/cgi-bin/gettoken", params={"corpid": CORP_ID}, timeout=5).json()["errcode"] == 45009
    requests.post(base + "/faults", json={"errcode": -1, "times": 3}, timeout=5)
    requests.delete(base + "/faults", timeout=5)
    token = api.token
    before = emulator.clock.now()
    assert requests.post(base + "/clock/advance", json={"seconds": 100}, timeout=5).json()["now"] >= before + 100
    requests.post(base + "/expire-tokens", timeout=5)
    assert api.get("externalcontact/list", userid="alice", access_token=token)["errcode"] == 42001
    assert requests.get(base + "/calls", params={"path": "/cgi-bin/gettoken"}, timeout=5).json() == {"/cgi-bin/gettoken": 2}
    assert requests.put(base + "/callback-url", json={"url": "http://127.0.0.1:9/cb"}, timeout=5).json()["url"]
    assert emulator.callback_url == "http://127.0.0.1:9/cb"
    code = requests.post(base + "/oauth-code", json={"userid": "alice"}, timeout=5).json()["code"]
    assert Api(emulator).get("auth/getuserinfo", code=code)["userid"] == "alice"


def test_demo_seed_is_believable_and_deterministic(demo_emulator: Emulator) -> None:
    summary = demo_emulator.state.summary()
    assert summary["staff"] == 20 and summary["customers"] == 3000 and summary["tag_groups"] == 4
    assert 35 <= summary["group_chats"] <= 45 and summary["relations"] > 3000
    names = {g.name for g in demo_emulator.state.tag_groups.values()}
    assert names == {"客户等级", "行业", "来源渠道", "意向产品"}
    customers = list(demo_emulator.state.customers.values())
    assert any(c.type == 2 and c.corp_name for c in customers)
    assert all(1 <= len(c.follows) <= 3 for c in customers)
    tagged = sum(1 for rels in demo_emulator.state.by_user.values() for r in rels if r.tags)
    assert tagged > summary["relations"] // 3
    times = [r.createtime for rels in demo_emulator.state.by_user.values() for r in rels]
    assert max(times) - min(times) > 600 * 86400
    other = make_emulator("demo")
    try:
        assert [c.name for c in other.state.customers.values()][:50] == [c.name for c in customers][:50]
        assert list(other.state.customers)[:50] == list(demo_emulator.state.customers)[:50]
    finally:
        other.stop()


def test_int_seed_and_batch_paging_stays_cheap() -> None:
    emu = make_emulator(30_000)
    try:
        summary = emu.state.summary()
        assert summary["customers"] == 30_000 and summary["staff"] == 60 and summary["relations"] >= 30_000
        api = Api(emu)
        userid = emu.state.follow_users()[-1]
        expected = [r.external_userid for r in emu.state.by_user[userid]]
        emu.act.staff_deletes_customer(userid, expected[150])  # a tombstone mid-list is skipped, not counted
        del expected[150]
        seen: list[str] = []
        cursor = ""
        while True:
            data = api.ok("externalcontact/batch/get_by_user", {"userid_list": [userid], "limit": 100, "cursor": cursor})
            seen += [row["external_contact"]["external_userid"] for row in data["external_contact_list"]]
            cursor = data["next_cursor"]
            if not cursor:
                break
            assert not cursor.isdigit()  # opaque, not an offset
        assert seen == expected and len(seen) > 200
    finally:
        emu.stop()


def test_python_m_runs_without_the_flask_app() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "wecom.emulator", "--port", "0", "--seed", "50",
                             "--corp-id", CORP_ID, "--contact-secret", "s3cret"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("WeCom emulator at http://127.0.0.1:"), first
        url = first.split(" at ")[1].split()[0]
        assert "customers=50" in proc.stdout.readline()
        data = requests.get(url + "/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": "s3cret"}, timeout=5).json()
        assert data["errcode"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_flask_command_is_registered() -> None:
    from wecom.cli import wecom_cli

    command = wecom_cli.commands["emulator"]
    assert {p.name for p in command.params} == {"host", "port", "seed", "callback_url"}
