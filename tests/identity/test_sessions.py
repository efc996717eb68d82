"""Sessions end when they should: signing out, a change of role and a resignation end a person's sessions
(and a resignation their API tokens) at once; an old cookie replayed afterwards is refused."""

from __future__ import annotations

from typing import Any

import requests

from tests.integration.test_callbacks_e2e import settle, wired, worker  # noqa: F401  (fixtures)
from tests.sidebar.conftest import Corp, corp, grant, make_token, oauth_sign_in  # noqa: F401  (fixtures)

COOKIE = "session"


def _cookie(client: Any) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return str(cookie.value)


def test_a_cookie_replayed_after_sign_out_is_refused(client: Any, emu: Any, corp: Corp) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    ext = corp.customers["xss"]
    assert client.get(f"/api/v1/customers/{ext}").status_code == 200
    old = _cookie(client)
    with client.session_transaction() as sess:
        csrf = sess["csrf"]
    assert client.post("/console/logout", data={"csrf_token": csrf}).status_code == 302
    client.set_cookie(COOKIE, old)  # the signed cookie is still well-formed, but its session has ended
    assert client.get(f"/api/v1/customers/{ext}").status_code == 401
    assert client.get("/sidebar/").status_code == 302


def test_a_change_of_role_ends_the_persons_sessions_but_not_others(client: Any, app: Any, emu: Any, corp: Corp,
                                                                  db_session: Any) -> None:
    oauth_sign_in(client, emu, "lisi")
    other = app.test_client()
    oauth_sign_in(other, emu, "zhangsan")
    grant(db_session, "lisi", "manager")
    assert client.get(f"/api/v1/customers/{corp.customers['lisi_only']}").status_code == 401
    assert other.get(f"/api/v1/customers/{corp.customers['xss']}").status_code == 200


def test_a_resignation_told_by_a_wecom_callback_ends_sidebar_and_token_at_once(client: Any, wired: Any,
                                                                              corp: Corp, db_session: Any,
                                                                              live_server: Any) -> None:
    from identity.models import ApiToken, UserSession

    emu = wired
    oauth_sign_in(client, emu, "zhangsan")
    secret = make_token(db_session, "staff", "zhangsan")
    ext = corp.customers["xss"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert requests.get(f"{live_server.url}/api/v1/customers/{ext}", headers=headers, timeout=5).status_code == 200
    assert client.get(f"/sidebar/customer/{ext}").status_code == 200

    emu.act.staff_resigns("zhangsan")  # WeCom sends change_contact / delete_user
    settle(db_session, emu)

    assert client.get(f"/sidebar/customer/{ext}").status_code == 302  # back to sign-in
    assert client.get(f"/api/v1/customers/{ext}").status_code == 401
    assert requests.get(f"{live_server.url}/api/v1/customers/{ext}", headers=headers, timeout=5).status_code == 401
    db_session.expire_all()
    assert {s.revoked_reason for s in db_session.query(UserSession).filter_by(userid="zhangsan")} == {"resigned"}
    assert all(t.revoked_at is not None for t in db_session.query(ApiToken).filter_by(userid="zhangsan"))
