"""The customer page and API: who may see what, escaping, CSP, CSRF, follow-ups, stage, on-demand fetch."""

from __future__ import annotations

from typing import Any

from tests.helpers import TEST_CORP_ID
from tests.sidebar.conftest import XSS_NAME, grant, make_token, oauth_sign_in


def _csrf(client: Any) -> dict[str, str]:
    with client.session_transaction() as sess:
        return {"X-CSRF-Token": sess["csrf"]}


def test_staff_sees_their_customer_with_escaped_text_and_a_strict_csp(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    page = client.get(f"/sidebar/customer/{corp.customers['xss']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert XSS_NAME not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-inline" not in csp
    assert "expo2026" in html  # the channel (State)
    assert "华东客户群" in html  # shared group chat


def test_profile_shape(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    body = client.get(f"/api/v1/customers/{corp.customers['shared']}").get_json()
    assert body["external_userid"] == corp.customers["shared"] and body["name"] == "陈晓明"
    users = {f["userid"]: f for f in body["follow_users"]}
    assert set(users) == {"zhangsan", "lisi"}
    assert users["zhangsan"]["is_me"] and users["zhangsan"]["added_at"]
    assert users["lisi"]["tags"] == [{"tag_id": corp.tags["B类"], "name": "B类", "group_name": "客户等级"}]
    assert body["followups"] == [] and body["group_chats"][0]["name"] == "华东客户群"


def test_a_customer_not_followed_is_a_404_like_a_missing_one(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    other = client.get(f"/sidebar/customer/{corp.customers['other']}")
    missing = client.get("/sidebar/customer/wmDOESNOTEXIST")
    assert other.status_code == missing.status_code == 404
    assert "找不到该客户" in other.get_data(as_text=True)
    api_other = client.get(f"/api/v1/customers/{corp.customers['other']}")
    api_missing = client.get("/api/v1/customers/wmDOESNOTEXIST")
    assert api_other.status_code == api_missing.status_code == 404
    assert api_other.get_json() == api_missing.get_json()
    assert client.post(f"/api/v1/customers/{corp.customers['other']}/followups", json={"content": "x"},
                       headers=_csrf(client)).status_code == 404


def test_manager_sees_the_department_admin_sees_all(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    grant(db_session, "laowang", "manager")
    oauth_sign_in(client, emu, "laowang")
    assert client.get(f"/api/v1/customers/{corp.customers['lisi_only']}").status_code == 200  # same dept + report
    assert client.get(f"/api/v1/customers/{corp.customers['xss']}").status_code == 200  # zhangsan: dept 1
    assert client.get(f"/api/v1/customers/{corp.customers['other']}").status_code == 404  # wangwu: dept 2
    grant(db_session, "laowang", "admin")  # a change of role ends the session: sign in again
    assert client.get(f"/api/v1/customers/{corp.customers['other']}").status_code == 401
    oauth_sign_in(client, emu, "laowang")
    assert client.get(f"/api/v1/customers/{corp.customers['other']}").status_code == 200


def test_staff_token_sees_only_its_staff_members_customers(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    token = {"Authorization": f"Bearer {make_token(db_session, 'staff', 'wangwu')}"}
    assert client.get(f"/api/v1/customers/{corp.customers['other']}", headers=token).status_code == 200
    assert client.get(f"/api/v1/customers/{corp.customers['xss']}", headers=token).status_code == 404


def test_session_writes_need_the_csrf_header_tokens_do_not(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    ext = corp.customers["xss"]
    oauth_sign_in(client, emu, "zhangsan")
    refused = client.post(f"/api/v1/customers/{ext}/followups", json={"content": "电话沟通"})
    assert refused.status_code == 403
    wrong = client.post(f"/api/v1/customers/{ext}/followups", json={"content": "x"}, headers={"X-CSRF-Token": "no"})
    assert wrong.status_code == 403
    client.post("/console/logout", data={"csrf_token": _csrf(client)["X-CSRF-Token"]})
    token = {"Authorization": f"Bearer {make_token(db_session, 'staff', 'zhangsan')}"}
    ok = client.post(f"/api/v1/customers/{ext}/followups", json={"content": "电话沟通"}, headers=token)
    assert ok.status_code == 201 and ok.get_json()["userid"] == "zhangsan"


def test_followups_newest_first_with_next_contact_date(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    from crm.models import AuditLog

    ext = corp.customers["shared"]
    oauth_sign_in(client, emu, "zhangsan")
    first = client.post(f"/api/v1/customers/{ext}/followups", json={"content": "第一次拜访"}, headers=_csrf(client))
    second = client.post(f"/api/v1/customers/{ext}/followups",
                         json={"content": "报价 <b>10万</b>", "next_at": "2026-12-01"}, headers=_csrf(client))
    assert first.status_code == second.status_code == 201
    assert second.get_json()["next_at"] == "2026-12-01T01:00:00+00:00"  # 09:00 China time
    body = client.get(f"/api/v1/customers/{ext}").get_json()
    assert [f["content"] for f in body["followups"]] == ["报价 <b>10万</b>", "第一次拜访"]
    html = client.get(f"/sidebar/customer/{ext}").get_data(as_text=True)
    assert html.index("报价 &lt;b&gt;10万&lt;/b&gt;") < html.index("第一次拜访")
    assert db_session.query(AuditLog).filter(AuditLog.action == "followup.add").count() == 2
    for bad in ({"content": "   "}, {"content": "x", "next_at": "next week"}, {"content": "x" * 2001}):
        answer = client.post(f"/api/v1/customers/{ext}/followups", json=bad, headers=_csrf(client))
        assert answer.status_code == 422 and answer.get_json()["error"]["message"]


def test_stage_change_is_recorded(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    from crm.models import StageChange

    ext = corp.customers["xss"]
    oauth_sign_in(client, emu, "zhangsan")
    answer = client.put(f"/api/v1/customers/{ext}/stage", json={"stage": "意向客户"}, headers=_csrf(client))
    assert answer.status_code == 200 and answer.get_json()["stage"] == "意向客户"
    change = db_session.query(StageChange).one()
    assert (change.from_stage, change.to_stage, change.actor) == (None, "意向客户", "zhangsan")
    bad = client.put(f"/api/v1/customers/{ext}/stage", json={"stage": "不存在的阶段"}, headers=_csrf(client))
    assert bad.status_code == 422
    assert client.get(f"/api/v1/customers/{ext}").get_json()["stage"] == "意向客户"


def test_customer_not_synced_yet_is_fetched_on_demand(client: Any, emu: Any, corp: Any) -> None:
    fresh = emu.act.customer_adds_staff("zhangsan", name="新来的客户", state="web")
    oauth_sign_in(client, emu, "zhangsan")
    page = client.get(f"/sidebar/customer/{fresh}")
    assert page.status_code == 200 and "新来的客户" in page.get_data(as_text=True)
    assert emu.call_count("/cgi-bin/externalcontact/get") == 1
    client.get(f"/sidebar/customer/{fresh}")
    assert emu.call_count("/cgi-bin/externalcontact/get") == 1  # stored the first time


def test_new_relation_of_a_known_customer_is_fetched(client: Any, emu: Any, corp: Any) -> None:
    ext = corp.customers["other"]
    emu.act.customer_adds_staff("zhangsan", name="赵敏", external_userid=ext)
    oauth_sign_in(client, emu, "zhangsan")
    assert client.get(f"/api/v1/customers/{ext}").status_code == 200


def test_wecom_down_while_fetching_says_so(client: Any, emu: Any, corp: Any) -> None:
    fresh = emu.act.customer_adds_staff("zhangsan", name="新来的客户")
    oauth_sign_in(client, emu, "zhangsan")
    emu.faults.add(path="/cgi-bin/externalcontact/get", http_status=503, times=10)
    page = client.get(f"/sidebar/customer/{fresh}")
    assert page.status_code == 503 and "企业微信暂时无法访问" in page.get_data(as_text=True)
    api = client.get(f"/api/v1/customers/{fresh}")
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "wecom_unavailable"


def test_group_chat_page_lists_members_and_customers(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    page = client.get(f"/sidebar/chat/{corp.chat_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "华东客户群" in html and "其中客户 2 人" in html and "群主" in html
    assert f"/sidebar/customer/{corp.customers['shared']}" in html
    oauth_sign_in(client, emu, "wangwu")
    assert client.get(f"/sidebar/chat/{corp.chat_id}").status_code == 404


def test_entry_page_carries_the_register_config_and_the_official_sdk(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    html = client.get("/sidebar/").get_data(as_text=True)
    assert "vendor/wecom-jssdk/wecom.global.prod.js" in html and "ww-standin" not in html
    assert f'"corpId": "{TEST_CORP_ID}"' in html or f'"corpId":"{TEST_CORP_ID}"' in html


def test_demo_link_and_standin_exist_only_in_demo_mode(client: Any, emu: Any, corp: Any,
                                                        monkeypatch: Any) -> None:
    from core.settings import settings

    assert client.get("/sidebar/demo/ww-standin.js").status_code == 404
    assert client.get("/sidebar/demo", query_string={"userid": "zhangsan",
                                                      "external_userid": corp.customers["xss"]}).status_code == 404
    monkeypatch.setattr(settings(), "SCRM_DEMO", True)
    start = client.get("/sidebar/demo", query_string={"userid": "zhangsan", "external_userid": corp.customers["xss"]})
    assert start.status_code == 302
    to_emulator = client.get(start.headers["Location"])
    assert "userid=zhangsan" in to_emulator.headers["Location"]
    import requests
    from urllib.parse import parse_qs, urlsplit

    back = urlsplit(requests.get(to_emulator.headers["Location"].split("#")[0], allow_redirects=False,
                                 timeout=5).headers["Location"])
    client.get(back.path, query_string={k: v[0] for k, v in parse_qs(back.query).items()})
    html = client.get("/sidebar/").get_data(as_text=True)
    assert "/sidebar/demo/ww-standin.js" in html and corp.customers["xss"] in html
    assert client.get("/sidebar/demo/ww-standin.js").status_code == 200
    # without a customer, the one the staff member added last is opened
    client.get("/sidebar/demo", query_string={"userid": "lisi"})
    with client.session_transaction() as sess:
        assert sess["demo_context"] == {"entry": "single_chat_tools", "userId": corp.customers["lisi_only"]}
