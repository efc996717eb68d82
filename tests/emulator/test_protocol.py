"""Tokens, methods, malformed bodies, permissions, faults and call recording (wecom-api.md §0, §1, §2.4)."""

from __future__ import annotations

import time
from urllib.parse import unquote

import requests

from tests.emulator.conftest import AGENT_SECRET, CONTACT_SECRET, CORP_ID, Api
from tests.emulator.wxcrypt import decrypt, encrypt, signature
from wecom.emulator import Emulator

VECTOR_A = {"token": "QDG6eK", "key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corpid": "wx5823bf96d3bd56c7"}
A2_ENCRYPT = ("RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg"
              "3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+k"
              "DZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6ti"
              "WSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p"
              "8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==")


def _gettoken(emu: Emulator, **params: str) -> dict:
    return requests.get(emu.url + "/cgi-bin/gettoken", params=params, timeout=5).json()


def test_independent_crypto_matches_official_vector_a() -> None:
    echostr = unquote("P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
    assert signature(VECTOR_A["token"], "1409659589", "263014780", echostr) == "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    assert decrypt(VECTOR_A["key"], echostr) == ("1616140317555161061", VECTOR_A["corpid"])
    assert signature(VECTOR_A["token"], "1409659813", "1372623149", A2_ENCRYPT) == \
        "477715d11cdb4164915debcba66cb864d751f3e6"
    msg, rid = decrypt(VECTOR_A["key"], A2_ENCRYPT)
    assert rid == VECTOR_A["corpid"]
    assert msg.startswith("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName>")
    assert "<Content><![CDATA[hello]]></Content>" in msg and "<MsgId>4561255354251345929</MsgId>" in msg
    # and the encrypt half round-trips, including a payload already aligned to 32 bytes (pad = 32)
    for text in ("hello", "x" * (64 - 20 - len(VECTOR_A["corpid"]))):
        assert decrypt(VECTOR_A["key"], encrypt(VECTOR_A["key"], text, VECTOR_A["corpid"])) == (text, VECTOR_A["corpid"])


def test_gettoken_errors_and_same_token_within_validity(emulator: Emulator) -> None:
    assert _gettoken(emulator, corpsecret=CONTACT_SECRET)["errcode"] == 41002
    assert _gettoken(emulator, corpid=CORP_ID)["errcode"] == 41004
    assert _gettoken(emulator, corpid="wwwrong000000001", corpsecret=CONTACT_SECRET)["errcode"] == 40013
    assert _gettoken(emulator, corpid=CORP_ID, corpsecret="nope")["errcode"] == 40001
    first = _gettoken(emulator, corpid=CORP_ID, corpsecret=CONTACT_SECRET)
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and first["expires_in"] == 7200
    assert isinstance(first["access_token"], str) and len(first["access_token"]) <= 512
    emulator.clock.advance(3600)
    again = _gettoken(emulator, corpid=CORP_ID, corpsecret=CONTACT_SECRET)
    assert again["access_token"] == first["access_token"] and again["expires_in"] == 3600
    agent = _gettoken(emulator, corpid=CORP_ID, corpsecret=AGENT_SECRET)
    assert agent["access_token"] != first["access_token"]


def test_token_validation_expiry_and_early_invalidation(emulator: Emulator) -> None:
    api = Api(emulator, refresh=False)
    path = "externalcontact/get_follow_user_list"
    assert api.get(path, access_token="")["errcode"] == 41001
    assert api.get(path, access_token="garbage")["errcode"] == 40014
    assert api.get(path)["errcode"] == 0
    emulator.clock.advance(7200)
    assert api.get(path)["errcode"] == 42001
    api._token = None
    assert api.get(path)["errcode"] == 0
    old = api.token
    emulator.expire_tokens()
    assert api.get(path)["errcode"] == 42001
    api._token = None
    assert api.token != old and api.get(path)["errcode"] == 0


def test_error_body_shape(emulator: Emulator) -> None:
    resp = requests.get(emulator.url + "/cgi-bin/externalcontact/get_follow_user_list", timeout=5)
    assert resp.status_code == 200
    data = resp.json()
    assert set(data) == {"errcode", "errmsg"} and data["errcode"] == 41001
    assert "more info at https://open.work.weixin.qq.com/devtool/query?e=41001" in data["errmsg"]


def test_wrong_method_and_malformed_json(api: Api) -> None:
    assert api.get("externalcontact/remark")["errcode"] == 40058
    assert api.post("externalcontact/get_follow_user_list")["errcode"] == 40058
    resp = api.session.post(api.emu.url + "/cgi-bin/externalcontact/remark", params={"access_token": api.token},
                            data=b'{"userid": ', timeout=5).json()
    assert resp["errcode"] == 40058 and "Warning: wrong json format." in resp["errmsg"]
    resp = api.session.post(api.emu.url + "/cgi-bin/externalcontact/remark", params={"access_token": api.token},
                            json=[1, 2], timeout=5).json()
    assert resp["errcode"] == 40058


def test_both_secrets_may_call_externalcontact_unless_denied(emulator: Emulator) -> None:
    contact, agent = Api(emulator, "contact"), Api(emulator, "agent")
    path = "externalcontact/get_follow_user_list"
    assert contact.get(path)["errcode"] == 0 and agent.get(path)["errcode"] == 0
    emulator.deny_externalcontact("agent")
    assert agent.get(path)["errcode"] == 48002
    assert contact.get(path)["errcode"] == 0
    emulator.deny_externalcontact("agent", denied=False)
    assert agent.get(path)["errcode"] == 0


def test_faults_errcode_http_status_delay_and_times(emulator: Emulator) -> None:
    api = Api(emulator)
    path = "/cgi-bin/externalcontact/get_follow_user_list"
    emulator.faults.add(errcode=45009, times=2)
    assert api.token  # gettoken is not hit by a path-less fault
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 45009
    assert api.get("externalcontact/list", userid="x")["errcode"] == 45009
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 0
    emulator.faults.add(path=path, http_status=502)
    resp = api.session.get(emulator.url + path, params={"access_token": api.token}, timeout=5)
    assert resp.status_code == 502
    emulator.faults.add(path=path, delay=0.3)
    started = time.monotonic()
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    emulator.faults.add(path="/cgi-bin/gettoken", errcode=-1)
    assert _gettoken(emulator, corpid=CORP_ID, corpsecret=CONTACT_SECRET)["errcode"] == -1
    emulator.faults.add(errcode=45033, times=5)
    emulator.faults.clear()
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 0


def test_faults_by_chance_and_after_the_effect(emulator: Emulator) -> None:
    """`probability`: that share of calls fails until `times` have failed; `after`: the call takes
    effect and only its answer is lost (what a client must reconcile before sending again)."""
    api = Api(emulator)
    path = "/cgi-bin/externalcontact/get_follow_user_list"
    assert api.token
    emulator.faults.add(path=path, errcode=45009, probability=0.3, times=1000)
    codes = [api.get("externalcontact/get_follow_user_list")["errcode"] for _ in range(200)]
    assert 20 <= codes.count(45009) <= 100 and set(codes) == {0, 45009}
    emulator.faults.clear()
    emulator.act.add_staff("zhangsan", "张三")
    group, _ = emulator.act.corp_tag_group_created("等级", ["A类"])
    emulator.faults.add(path="/cgi-bin/externalcontact/add_corp_tag", http_status=503, after=True)
    resp = api.session.post(emulator.url + "/cgi-bin/externalcontact/add_corp_tag", params={"access_token": api.token},
                            json={"group_id": group, "tag": [{"name": "B类"}]}, timeout=5)
    assert resp.status_code == 503
    names = [t["name"] for g in api.post("externalcontact/get_corp_tag_list", {})["tag_group"] for t in g["tag"]]
    assert "B类" in names  # it happened, though the caller was told it failed


def test_calls_are_recorded_in_order(emulator: Emulator) -> None:
    api = Api(emulator)
    api.get("externalcontact/list", userid="nobody")
    api.post("externalcontact/mark_tag", {"userid": "a"})
    paths = [c[1] for c in emulator.calls]
    assert paths == ["/cgi-bin/gettoken", "/cgi-bin/externalcontact/list", "/cgi-bin/externalcontact/mark_tag"]
    method, _, query, body = emulator.calls[2]
    assert method == "POST" and query["access_token"] == api.token and body == {"userid": "a"}
    assert emulator.calls[1][3] is None and emulator.calls[1][2]["userid"] == "nobody"
    assert emulator.call_count("/cgi-bin/externalcontact/list") == 1
