"""Staff sign-in: OAuth in the WeCom client and web login (QR) in a browser, against the emulator."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from tests.sidebar.conftest import make_token, oauth_sign_in


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_sidebar_sends_anonymous_staff_through_wecom_oauth(client: Any, emu: Any) -> None:
    first = client.get("/sidebar/customer/wmabc")
    assert first.status_code == 302
    start = client.get(first.headers["Location"])
    location = start.headers["Location"]
    assert location.startswith(f"{emu.url}/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    q = _query(location.split("#")[0])
    assert q["appid"] == TEST_CORP_ID and q["agentid"] == TEST_SETTINGS["WECOM_AGENT_ID"]
    assert q["scope"] == "snsapi_base" and q["response_type"] == "code"
    assert q["redirect_uri"].endswith("/auth/wecom/callback")
    assert q["state"].isalnum() and 16 <= len(q["state"]) <= 128
    with client.session_transaction() as sess:
        assert sess["oauth_state"] == q["state"]
        assert sess["oauth_next"] == "/sidebar/customer/wmabc"


def test_oauth_round_trip_signs_in_with_an_httponly_session(client: Any, emu: Any, corp: Any,
                                                             db_session: Any) -> None:
    done = oauth_sign_in(client, emu, "zhangsan", next_path="/sidebar/")
    assert done.status_code == 302 and done.headers["Location"] == "/sidebar/"
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert emu.call_count("/cgi-bin/auth/getuserinfo") == 1
    page = client.get("/sidebar/")
    assert page.status_code == 200
    assert "sidebar-config" in page.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert sess["sid"] and "uid" not in sess and "oauth_state" not in sess
    from identity.models import UserSession

    assert [s.userid for s in db_session.query(UserSession).all()] == ["zhangsan"]


def test_state_mismatch_is_refused_and_nobody_is_signed_in(client: Any, emu: Any, corp: Any) -> None:
    client.get("/auth/wecom/start", query_string={"next": "/sidebar/"})
    code = emu.oauth_code("zhangsan")
    answer = client.get("/auth/wecom/callback", query_string={"code": code, "state": "forged0state"})
    assert answer.status_code == 400
    assert "登录已失效" in answer.get_data(as_text=True)
    assert emu.call_count("/cgi-bin/auth/getuserinfo") == 0
    assert client.get("/sidebar/").status_code == 302


def test_callback_without_a_started_sign_in_is_refused(client: Any, emu: Any, corp: Any) -> None:
    code = emu.oauth_code("zhangsan")
    assert client.get("/auth/wecom/callback", query_string={"code": code, "state": "x"}).status_code == 400


def test_a_used_code_cannot_sign_in_again(client: Any, emu: Any, corp: Any) -> None:
    start = client.get("/auth/wecom/start")
    answer = requests.get(start.headers["Location"].split("#")[0], params={"userid": "zhangsan"},
                          allow_redirects=False, timeout=5)
    q = _query(answer.headers["Location"])
    assert client.get("/auth/wecom/callback", query_string=q).status_code == 302
    client.post("/console/logout", data={"csrf_token": _csrf(client)})
    fresh = _query(client.get("/auth/wecom/start").headers["Location"].split("#")[0])["state"]
    replay = client.get("/auth/wecom/callback", query_string={"code": q["code"], "state": fresh})
    assert replay.status_code == 401
    assert "登录码已失效" in replay.get_data(as_text=True)


def test_refused_login_has_no_code(client: Any, emu: Any) -> None:
    state = _query(client.get("/auth/wecom/start").headers["Location"].split("#")[0])["state"]
    answer = client.get("/auth/wecom/callback", query_string={"state": state})
    assert answer.status_code == 401


def test_resigned_staff_cannot_sign_in(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    from crm.models import Staff

    db_session.query(Staff).filter(Staff.userid == "wangwu").update({"status": "resigned"})
    db_session.commit()
    answer = oauth_sign_in(client, emu, "wangwu")
    assert answer.status_code == 403


def test_desktop_web_login_uses_the_qr_page(client: Any, emu: Any, corp: Any) -> None:
    login = client.get("/console/login")
    assert login.status_code == 200 and "企业微信扫码登录" in login.get_data(as_text=True)
    start = client.get("/auth/wecom/start", query_string={"mode": "qr", "next": "/console/"})
    location = start.headers["Location"]
    assert location.startswith(f"{emu.url}/wwlogin/sso/login?")
    q = _query(location)
    assert q["login_type"] == "CorpApp" and q["appid"] == TEST_CORP_ID and q["agentid"] == "1000002"
    done = oauth_sign_in(client, emu, "zhangsan", next_path="/console/", mode="qr")
    assert done.headers["Location"] == "/console/"
    home = client.get("/console/")
    assert home.status_code == 200 and "张三" in home.get_data(as_text=True)


def test_next_must_be_a_local_path(client: Any, emu: Any, corp: Any) -> None:
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert oauth_sign_in(client, emu, "zhangsan", next_path=evil).headers["Location"] == "/sidebar/"


def test_console_requires_sign_in_and_roles(client: Any, emu: Any, corp: Any) -> None:
    assert client.get("/console/").headers["Location"].startswith("/console/login?next=")
    oauth_sign_in(client, emu, "zhangsan", mode="qr")
    assert client.get("/console/roles").status_code == 403


def test_admin_sets_a_role_in_the_console_with_csrf(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    from identity.service import role_of
    from tests.sidebar.conftest import grant

    grant(db_session, "admin1", "admin")
    oauth_sign_in(client, emu, "admin1", mode="qr")
    page = client.get("/console/roles")
    assert page.status_code == 200 and "角色与权限" in page.get_data(as_text=True)
    assert client.post("/console/roles", data={"userid": "laowang", "role": "manager"}).status_code == 403
    ok = client.post("/console/roles", data={"userid": "laowang", "role": "manager", "csrf_token": _csrf(client)})
    assert ok.status_code == 302
    assert role_of(TEST_CORP_ID, "laowang") == "manager"


def test_logout_needs_csrf(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    assert client.post("/console/logout").status_code == 403
    assert client.post("/console/logout", data={"csrf_token": _csrf(client)}).status_code == 302
    assert client.get("/sidebar/").status_code == 302


def test_bearer_tokens_authenticate_the_api(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    ext = corp.customers["other"]
    assert client.get(f"/api/v1/customers/{ext}").status_code == 401
    bad = client.get(f"/api/v1/customers/{ext}", headers={"Authorization": "Bearer scrm_nope"})
    assert bad.status_code == 401
    admin = make_token(db_session, "admin")
    assert client.get(f"/api/v1/customers/{ext}", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def _csrf(client: Any) -> str:
    with client.session_transaction() as sess:
        return sess["csrf"]
