"""JS-SDK signatures: the official vector, fragment stripping, the endpoint with real tickets."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.sidebar.conftest import oauth_sign_in
from wecom import jssdk

# wecom-api.md §8.2, official example (developer.work.weixin.qq.com path/90506)
VECTOR = {
    "jsapi_ticket": "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
    "noncestr": "Wm3WZYTPz0wzccnW",
    "timestamp": 1414587457,
    "url": "http://mp.weixin.qq.com?params=value",
    "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
}


def test_official_vector() -> None:
    v = VECTOR
    assert jssdk.sign(v["jsapi_ticket"], v["noncestr"], v["timestamp"], v["url"]) == v["signature"]


def test_fragment_is_not_signed() -> None:
    v = VECTOR
    assert jssdk.sign(v["jsapi_ticket"], v["noncestr"], v["timestamp"], v["url"] + "#/customer?x=1") == v["signature"]


def test_signature_for_uses_time_and_nonce() -> None:
    sig = jssdk.signature_for("TICKET", "https://scrm.example.com/sidebar/?a=1#frag", now=lambda: 1700000000.7)
    assert sig.timestamp == 1700000000 and len(sig.nonceStr) == 16 and sig.nonceStr.isalnum()
    raw = f"jsapi_ticket=TICKET&noncestr={sig.nonceStr}&timestamp=1700000000&url=https://scrm.example.com/sidebar/?a=1"
    assert sig.signature == hashlib.sha1(raw.encode()).hexdigest()
    assert jssdk.make_nonce() != jssdk.make_nonce()


def test_endpoint_signs_with_the_corp_and_the_agent_tickets(client: Any, emu: Any, corp: Any) -> None:
    from wecom.client import agent_client, contact_client

    oauth_sign_in(client, emu, "zhangsan")
    page = "http://localhost/sidebar/?from=toolbar"
    signed = {}
    for kind in ("config", "agent"):
        answer = client.get("/sidebar/jssdk/signature", query_string={"kind": kind, "url": page + "#x"})
        assert answer.status_code == 200, answer.get_json()
        signed[kind] = answer.get_json()
    corp_ticket, agent_ticket = contact_client().get_jsapi_ticket(), agent_client().get_agent_ticket()
    assert corp_ticket != agent_ticket
    for kind, ticket in (("config", corp_ticket), ("agent", agent_ticket)):
        s = signed[kind]
        assert s["signature"] == jssdk.sign(ticket, s["nonceStr"], s["timestamp"], page)
    # tickets are cached (in the shared database store), not fetched per signature
    client.get("/sidebar/jssdk/signature", query_string={"kind": "config", "url": page})
    assert emu.call_count("/cgi-bin/get_jsapi_ticket") == 1
    assert emu.call_count("/cgi-bin/ticket/get") == 1


def test_endpoint_refuses_foreign_pages_and_anonymous_callers(client: Any, emu: Any, corp: Any) -> None:
    anonymous = client.get("/sidebar/jssdk/signature", query_string={"url": "http://localhost/sidebar/"},
                           headers={"Accept": "application/json"})
    assert anonymous.status_code == 401
    oauth_sign_in(client, emu, "zhangsan")
    for url in ("https://evil.example/sidebar/", "javascript:alert(1)", "http://localhost/console/"):
        assert client.get("/sidebar/jssdk/signature", query_string={"url": url}).status_code == 422
    assert emu.call_count("/cgi-bin/get_jsapi_ticket") == 0


def test_endpoint_says_when_wecom_is_down(client: Any, emu: Any, corp: Any) -> None:
    oauth_sign_in(client, emu, "zhangsan")
    emu.faults.add(path="/cgi-bin/get_jsapi_ticket", http_status=502, times=10)
    answer = client.get("/sidebar/jssdk/signature", query_string={"url": "http://localhost/sidebar/"})
    assert answer.status_code == 503
    assert "企业微信" in answer.get_json()["error"]["message"]
