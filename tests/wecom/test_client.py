"""Unit tests of the WeCom API client against `responses`, mounted on an injected session only."""

from __future__ import annotations

import json
import logging
import pickle
import time
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from wecom.client import (DatabaseTokenStore, MemoryTokenStore, Page, WeComClient, WeComError, agent_client,
                          call_counts, contact_client, reset_call_counts)
from wecom.tokens import credential_key, refresh_margin

API = "http://wecom.test"
CORP = "wwtest0000000001"
SECRET = "contact-secret-xyz"
TOKEN_URL = API + "/cgi-bin/gettoken"
MARK_TAG = "/cgi-bin/externalcontact/mark_tag"
OK = {"errcode": 0, "errmsg": "ok"}


class MockAdapter(HTTPAdapter):
    """Mounted on the injected session; `responses` patches this class only, not requests itself."""


class RecordingSession(requests.Session):
    """Records the path and `timeout` of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.mount("http://", MockAdapter())
        self.mount("https://", MockAdapter())
        self.seen: list[tuple[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.seen.append((urlparse(str(url)).path, kwargs.get("timeout")))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture()
def wecom() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(target=f"{__name__}.MockAdapter.send", assert_all_requests_are_fired=False) as rsps:
        yield rsps


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(secret: str = SECRET, *, store: Any = None, session: requests.Session | None = None,
                sleeps: Sleeps | None = None, **kwargs: Any) -> WeComClient:
    return WeComClient(CORP, secret, api_base=API, token_store=store if store is not None else MemoryTokenStore(),
                       session=session or RecordingSession(), sleep=sleeps if sleeps is not None else Sleeps(),
                       **kwargs)


def token_server(wecom: responses.RequestsMock, *, prefix: str = "tok") -> list[dict[str, list[str]]]:
    """gettoken answering a new token per call ("tok1", "tok2", …; per secret); returns the queries seen."""
    seen: list[dict[str, list[str]]] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlparse(request.url).query)
        seen.append(query)
        token = f"{prefix}-{query['corpsecret'][0]}-{len(seen)}"
        return 200, {}, json.dumps({**OK, "access_token": token, "expires_in": 7200})

    wecom.add_callback("GET", TOKEN_URL, callback=answer)
    return seen


def tokens_used(wecom: responses.RequestsMock, path: str) -> list[str]:
    return [parse_qs(urlparse(c.request.url).query)["access_token"][0]
            for c in wecom.calls if urlparse(c.request.url).path == path]


def hits(wecom: responses.RequestsMock, path: str) -> int:
    return sum(1 for c in wecom.calls if urlparse(c.request.url).path == path)


# ---------------------------------------------------------------- retry policy


TRANSIENT = [
    pytest.param({"json": {"errcode": -1, "errmsg": "system busy"}}, -1, id="-1"),
    pytest.param({"json": {"errcode": 45009, "errmsg": "api freq out of limit"}}, 45009, id="45009"),
    pytest.param({"json": {"errcode": 45033, "errmsg": "api concurrent out of limit"}}, 45033, id="45033"),
    pytest.param({"status": 500, "body": "oops"}, -3, id="http-500"),
    pytest.param({"status": 502, "body": "bad gateway"}, -3, id="http-502"),
    pytest.param({"status": 429, "body": "slow down"}, -3, id="http-429"),
    pytest.param({"body": requests.ConnectionError("connection reset")}, -2, id="connection-error"),
    pytest.param({"body": requests.ReadTimeout("read timed out")}, -2, id="read-timeout"),
    pytest.param({"body": requests.ConnectTimeout("connect timed out")}, -2, id="connect-timeout"),
]


@pytest.mark.parametrize(("failure", "errcode"), TRANSIENT)
def test_transient_failure_is_retried_then_succeeds(wecom: responses.RequestsMock, failure: dict[str, Any],
                                                    errcode: int) -> None:
    token_server(wecom)
    wecom.add("POST", API + MARK_TAG, **failure)
    wecom.add("POST", API + MARK_TAG, **failure)
    wecom.add("POST", API + MARK_TAG, json=OK)
    sleeps = Sleeps()
    make_client(sleeps=sleeps, backoff=0.5).mark_tag("zhangsan", "wmAAA", add_tag=["et1"])
    assert hits(wecom, MARK_TAG) == 3
    assert len(sleeps) == 2
    # exponential backoff with jitter of up to +50%
    assert 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.5


@pytest.mark.parametrize(("failure", "errcode"), TRANSIENT)
def test_retry_cap_raises_the_last_error(wecom: responses.RequestsMock, failure: dict[str, Any],
                                         errcode: int) -> None:
    token_server(wecom)
    wecom.add("POST", API + MARK_TAG, **failure)  # repeated for every attempt
    sleeps = Sleeps()
    with pytest.raises(WeComError) as info:
        make_client(sleeps=sleeps, max_retries=2).mark_tag("zhangsan", "wmAAA", add_tag=["et1"])
    assert info.value.errcode == errcode
    assert info.value.path == MARK_TAG
    assert info.value.transient
    assert hits(wecom, MARK_TAG) == 3  # the first attempt + max_retries
    assert len(sleeps) == 2


def test_backoff_is_capped(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("POST", API + MARK_TAG, json={"errcode": -1, "errmsg": "busy"})
    sleeps = Sleeps()
    with pytest.raises(WeComError):
        make_client(sleeps=sleeps, max_retries=12, backoff=1.0).mark_tag("u", "wm", add_tag=["et"])
    assert len(sleeps) == 12
    assert max(sleeps) <= 45.0  # 30 s cap + 50% jitter
    assert sleeps == sorted(sleeps[:5]) + sleeps[5:]


@pytest.mark.parametrize(("failure", "errcode", "http_status"), [
    ({"json": {"errcode": 40068, "errmsg": "invalid tagid"}}, 40068, 200),
    ({"json": {"errcode": 48002, "errmsg": "api forbidden"}}, 48002, 200),
    ({"json": {"errcode": 41001, "errmsg": "access_token missing"}}, 41001, 200),
    ({"status": 404, "body": "not found"}, -3, 404),
    ({"status": 200, "body": "<html>proxy says hi</html>"}, -4, 200),
])
def test_permanent_failure_is_raised_at_once(wecom: responses.RequestsMock, failure: dict[str, Any],
                                             errcode: int, http_status: int) -> None:
    token_server(wecom)
    wecom.add("POST", API + MARK_TAG, **failure)
    sleeps = Sleeps()
    with pytest.raises(WeComError) as info:
        make_client(sleeps=sleeps).mark_tag("zhangsan", "wmAAA", add_tag=["etX"])
    assert (info.value.errcode, info.value.http_status, info.value.path) == (errcode, http_status, MARK_TAG)
    assert not info.value.transient
    assert hits(wecom, MARK_TAG) == 1
    assert sleeps == []


def test_creating_calls_are_not_repeated_after_an_ambiguous_failure(wecom: responses.RequestsMock) -> None:
    """A mass message may have been created when the answer timed out: do not create it twice."""
    token_server(wecom)
    path = "/cgi-bin/externalcontact/add_msg_template"
    wecom.add("POST", API + path, body=requests.ReadTimeout("read timed out"))
    wecom.add("POST", API + path, json={**OK, "msgid": "msg1", "fail_list": []})
    client = make_client()
    with pytest.raises(WeComError) as info:
        client.add_msg_template({"chat_type": "single", "sender": "zhangsan", "text": {"content": "hi"}})
    assert info.value.errcode == -2 and info.value.transient  # the caller (outbox) decides
    assert hits(wecom, path) == 1
    # a 5xx is just as ambiguous
    wecom.replace("POST", API + path, status=502, body="bad gateway")
    with pytest.raises(WeComError) as info:
        client.add_msg_template({"chat_type": "single", "sender": "zhangsan", "text": {"content": "hi"}})
    assert info.value.http_status == 502
    assert hits(wecom, path) == 2


def test_creating_calls_are_repeated_when_nothing_was_sent(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    path = "/cgi-bin/externalcontact/add_msg_template"
    wecom.add("POST", API + path, body=requests.ConnectTimeout("connect timed out"))
    wecom.add("POST", API + path, json={"errcode": 45009, "errmsg": "api freq out of limit"})
    wecom.add("POST", API + path, status=429)
    wecom.add("POST", API + path, json={**OK, "msgid": "msg1", "fail_list": ["wmX"]})
    result = make_client().add_msg_template({"chat_type": "single", "sender": "zhangsan", "text": {"content": "hi"}})
    assert result == {"msgid": "msg1", "fail_list": ["wmX"]}
    assert hits(wecom, path) == 4


# ---------------------------------------------------------------- tokens


def test_token_is_fetched_once_and_reused(wecom: responses.RequestsMock) -> None:
    seen = token_server(wecom)
    wecom.add("GET", API + "/cgi-bin/externalcontact/get_follow_user_list", json={**OK, "follow_user": ["a"]})
    client = make_client()
    assert client.get_follow_user_list() == ["a"]
    assert client.get_follow_user_list() == ["a"]
    assert len(seen) == 1
    assert seen[0] == {"corpid": [CORP], "corpsecret": [SECRET]}
    assert tokens_used(wecom, "/cgi-bin/externalcontact/get_follow_user_list") == [f"tok-{SECRET}-1"] * 2


@pytest.mark.parametrize("errcode", [40014, 42001])
def test_rejected_token_is_refreshed_once_then_the_call_succeeds(wecom: responses.RequestsMock,
                                                                errcode: int) -> None:
    seen = token_server(wecom)
    wecom.add("POST", API + MARK_TAG, json={"errcode": errcode, "errmsg": "access_token expired"})
    wecom.add("POST", API + MARK_TAG, json=OK)
    sleeps = Sleeps()
    client = make_client(sleeps=sleeps)
    client.mark_tag("zhangsan", "wmAAA", add_tag=["et1"])
    assert len(seen) == 2
    assert tokens_used(wecom, MARK_TAG) == [f"tok-{SECRET}-1", f"tok-{SECRET}-2"]
    assert sleeps == []
    assert client.access_token() == f"tok-{SECRET}-2"  # the new token is cached


def test_second_token_rejection_is_raised_without_a_loop(wecom: responses.RequestsMock) -> None:
    seen = token_server(wecom)
    wecom.add("POST", API + MARK_TAG, json={"errcode": 42001, "errmsg": "access_token expired"})
    with pytest.raises(WeComError) as info:
        make_client().mark_tag("zhangsan", "wmAAA", add_tag=["et1"])
    assert info.value.errcode == 42001
    assert len(seen) == 2
    assert hits(wecom, MARK_TAG) == 2


def test_bad_secret_is_raised_at_once(wecom: responses.RequestsMock) -> None:
    wecom.add("GET", TOKEN_URL, json={"errcode": 40001, "errmsg": "invalid credential"})
    sleeps = Sleeps()
    with pytest.raises(WeComError) as info:
        make_client(sleeps=sleeps).get_follow_user_list()
    assert (info.value.errcode, info.value.path) == (40001, "/cgi-bin/gettoken")
    assert not info.value.transient
    assert hits(wecom, "/cgi-bin/gettoken") == 1
    assert hits(wecom, "/cgi-bin/externalcontact/get_follow_user_list") == 0
    assert sleeps == []


def test_force_refresh_fetches_a_new_token(wecom: responses.RequestsMock) -> None:
    seen = token_server(wecom)
    client = make_client()
    first = client.access_token()
    assert client.access_token() == first
    assert client.access_token(force_refresh=True) != first
    assert len(seen) == 2


def test_every_request_has_a_timeout(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("GET", API + "/cgi-bin/get_jsapi_ticket", json={**OK, "ticket": "T1", "expires_in": 7200})
    wecom.add("GET", API + "/cgi-bin/ticket/get", json={**OK, "ticket": "T2", "expires_in": 7200})
    wecom.add("POST", API + MARK_TAG, body=requests.ReadTimeout("slow"))
    wecom.add("POST", API + MARK_TAG, json=OK)
    wecom.add("POST", API + "/cgi-bin/media/upload", json={**OK, "type": "image", "media_id": "M1"})
    session = RecordingSession()
    client = make_client(session=session, timeout=3.5)
    client.get_jsapi_ticket()
    client.get_agent_ticket()
    client.mark_tag("u", "wm", add_tag=["et"])
    client.upload_media("image", "a.png", b"\x89PNG....", "image/png")
    paths = [p for p, _ in session.seen]
    assert paths == ["/cgi-bin/gettoken", "/cgi-bin/get_jsapi_ticket", "/cgi-bin/ticket/get", MARK_TAG, MARK_TAG,
                     "/cgi-bin/media/upload"]
    assert all(timeout == 3.5 for _, timeout in session.seen)
    # and the adapter received it too (what actually bounds the socket)
    assert all(c.request.req_kwargs["timeout"] == 3.5 for c in wecom.calls)


def test_credential_keys_differ_between_secrets_and_kinds() -> None:
    keys = {credential_key(CORP, kind, secret) for kind in ("access_token", "jsapi_ticket", "agent_ticket")
            for secret in ("contact-secret", "agent-secret")}
    assert len(keys) == 6
    assert credential_key(CORP, "access_token", "s") != credential_key("wwother000000001", "access_token", "s")
    assert all("secret" not in k.secret_hash and len(k.secret_hash) == 64 for k in keys)


def test_clients_with_different_secrets_never_share_tokens_or_tickets(wecom: responses.RequestsMock) -> None:
    seen = token_server(wecom)

    def ticket(request: Any) -> tuple[int, dict[str, str], str]:
        token = parse_qs(urlparse(request.url).query)["access_token"][0]
        return 200, {}, json.dumps({**OK, "ticket": f"ticket-for-{token}", "expires_in": 7200})

    wecom.add_callback("GET", API + "/cgi-bin/get_jsapi_ticket", callback=ticket)
    wecom.add_callback("GET", API + "/cgi-bin/ticket/get", callback=ticket)
    store = MemoryTokenStore()
    contact = make_client("contact-secret", store=store)
    agent = make_client("agent-secret", store=store)
    assert contact.access_token() == "tok-contact-secret-1"
    assert agent.access_token() == "tok-agent-secret-2"
    assert contact.access_token() == "tok-contact-secret-1"
    assert agent.get_agent_ticket() == "ticket-for-tok-agent-secret-2"
    assert agent.get_jsapi_ticket() == "ticket-for-tok-agent-secret-2"
    assert contact.get_jsapi_ticket() == "ticket-for-tok-contact-secret-1"
    # all cached: asking again makes no call
    calls = len(wecom.calls)
    assert agent.get_agent_ticket() == "ticket-for-tok-agent-secret-2"
    assert contact.get_jsapi_ticket() == "ticket-for-tok-contact-secret-1"
    assert len(wecom.calls) == calls and len(seen) == 2


def test_memory_store_refreshes_a_little_before_expiry() -> None:
    now = [1000.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    key = credential_key(CORP, "access_token", SECRET)
    store.set(key, "T", 7200)
    now[0] += 7200 - refresh_margin(7200) - 1
    assert store.get(key) == "T"
    now[0] += 1
    assert store.get(key) is None
    assert 0 < refresh_margin(7200) <= 300
    store.set(key, "T2", 7200)
    store.invalidate(key, "not-the-current-one")
    assert store.get(key) == "T2"
    store.invalidate(key, "T2")
    assert store.get(key) is None


# ---------------------------------------------------------------- database token store


def test_database_store_shares_a_token_between_clients(wecom: responses.RequestsMock, db_session: Any) -> None:
    seen = token_server(wecom)
    wecom.add("GET", API + "/cgi-bin/externalcontact/get_follow_user_list", json={**OK, "follow_user": ["a"]})
    first = make_client(store=DatabaseTokenStore())
    second = make_client(store=DatabaseTokenStore())  # another process, as far as caching goes
    first.get_follow_user_list()
    second.get_follow_user_list()
    assert len(seen) == 1
    assert tokens_used(wecom, "/cgi-bin/externalcontact/get_follow_user_list") == [f"tok-{SECRET}-1"] * 2
    # the agent secret gets a row of its own
    make_client("agent-secret", store=DatabaseTokenStore()).access_token()
    assert len(seen) == 2
    from wecom.models import CachedCredential

    rows = db_session.query(CachedCredential).all()
    assert sorted(r.value for r in rows) == ["tok-agent-secret-2", f"tok-{SECRET}-1"]
    assert all(SECRET not in r.secret_hash and r.corp_id == CORP for r in rows)


def test_database_store_refreshes_in_every_process_after_a_rejection(wecom: responses.RequestsMock,
                                                                     db_session: Any) -> None:
    seen = token_server(wecom)
    wecom.add("POST", API + MARK_TAG, json={"errcode": 40014, "errmsg": "invalid access_token"})
    wecom.add("POST", API + MARK_TAG, json=OK)
    first = make_client(store=DatabaseTokenStore(local_ttl=0))
    second = make_client(store=DatabaseTokenStore(local_ttl=0))
    first.mark_tag("u", "wm", add_tag=["et"])
    assert len(seen) == 2
    assert second.access_token() == f"tok-{SECRET}-2"  # the replacement is shared too


def test_database_store_does_not_touch_the_callers_session(wecom: responses.RequestsMock, db_session: Any,
                                                           app: Any) -> None:
    from sqlalchemy import select

    from core.db import db
    from wecom.models import CachedCredential

    token_server(wecom)
    pending = CachedCredential(corp_id="wwpending0000001", kind="access_token", secret_hash="x" * 64,
                               value="pending", expires_at=__import__("core.db").db.utcnow())
    db_session.add(pending)
    client = make_client(store=DatabaseTokenStore())
    client.access_token()
    client.access_token(force_refresh=True)
    assert pending in db_session.new  # neither flushed nor committed
    with db.engine.connect() as conn:
        corps = set(conn.scalars(select(CachedCredential.corp_id)))
    assert corps == {CORP}
    db_session.rollback()
    with db.engine.connect() as conn:
        assert set(conn.scalars(select(CachedCredential.corp_id))) == {CORP}


def test_database_store_honours_expiry(db_session: Any) -> None:
    now = [time.time()]
    store = DatabaseTokenStore(clock=lambda: now[0], local_ttl=0)
    key = credential_key(CORP, "jsapi_ticket", SECRET)
    store.set(key, "T", 7200)
    store.set(key, "T2", 7200)  # an update, not a second row
    assert DatabaseTokenStore(clock=lambda: now[0]).get(key) == "T2"
    now[0] += 7200 - refresh_margin(7200) + 1
    assert DatabaseTokenStore(clock=lambda: now[0]).get(key) is None
    store.invalidate(key, "other")
    now[0] -= 7200
    assert store.get(key) == "T2"
    store.invalidate(key)
    assert store.get(key) is None


# ---------------------------------------------------------------- pagination and limits


def test_pagination_follows_cursors_and_stops_on_empty(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    path = API + "/cgi-bin/externalcontact/groupchat/list"
    wecom.add("POST", path, json={**OK, "group_chat_list": [{"chat_id": "wr1", "status": 0}], "next_cursor": "c1"})
    wecom.add("POST", path, json={**OK, "group_chat_list": [{"chat_id": "wr2", "status": 1}], "next_cursor": "c2"})
    wecom.add("POST", path, json={**OK, "group_chat_list": [{"chat_id": "wr3", "status": 0}], "next_cursor": ""})
    wecom.add("POST", path, json={**OK, "group_chat_list": [{"chat_id": "never"}], "next_cursor": ""})
    chats = list(make_client().iter_groupchats(owner_userids=["a", "b"], limit=1))
    assert [c["chat_id"] for c in chats] == ["wr1", "wr2", "wr3"]
    bodies = [json.loads(c.request.body) for c in wecom.calls if c.request.url.startswith(path)]
    assert [b["cursor"] for b in bodies] == ["", "c1", "c2"]
    assert bodies[0]["owner_filter"] == {"userid_list": ["a", "b"]} and bodies[0]["limit"] == 1


def test_batch_pages_carry_their_cursor_for_resume(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    path = API + "/cgi-bin/externalcontact/batch/get_by_user"
    row = {"external_contact": {"external_userid": "wm1", "name": "李四"}, "follow_info": {"userid": "a"}}
    wecom.add("POST", path, json={**OK, "external_contact_list": [row], "next_cursor": "c2"})
    wecom.add("POST", path, json={**OK, "external_contact_list": [row, row], "next_cursor": ""})
    pages = list(make_client().iter_batch_get_by_user(["a"], cursor="c1", limit=50))
    assert pages == [Page(items=[row], next_cursor="c2"), Page(items=[row, row], next_cursor="")]
    bodies = [json.loads(c.request.body) for c in wecom.calls if c.request.url.startswith(path)]
    assert bodies == [{"userid_list": ["a"], "limit": 50, "cursor": "c1"},
                      {"userid_list": ["a"], "limit": 50, "cursor": "c2"}]


def test_a_cursor_that_does_not_advance_is_an_error(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    path = API + "/cgi-bin/externalcontact/get_unassigned_list"
    wecom.add("POST", path, json={**OK, "info": [{"handover_userid": "a"}], "next_cursor": "same"})
    with pytest.raises(WeComError) as info:
        list(make_client().iter_unassigned())
    assert info.value.errcode == -4
    assert hits(wecom, "/cgi-bin/externalcontact/get_unassigned_list") == 2


def test_customer_detail_merges_every_follow_user_page(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    path = API + "/cgi-bin/externalcontact/get"
    contact = {"external_userid": "wm1", "name": "李四"}
    wecom.add("GET", path, json={**OK, "external_contact": contact, "follow_user": [{"userid": "a"}],
                                 "next_cursor": "n1"})
    wecom.add("GET", path, json={**OK, "external_contact": contact, "follow_user": [{"userid": "b"}],
                                 "next_cursor": ""})
    detail = make_client().get_external_contact("wm1")
    assert detail == {"external_contact": contact, "follow_user": [{"userid": "a"}, {"userid": "b"}]}
    queries = [parse_qs(urlparse(c.request.url).query) for c in wecom.calls if c.request.url.startswith(path)]
    assert "cursor" not in queries[0] and queries[1]["cursor"] == ["n1"]


@pytest.mark.parametrize("call", [
    lambda c: c.batch_get_by_user([f"u{i}" for i in range(101)]),
    lambda c: c.iter_batch_get_by_user([f"u{i}" for i in range(101)]),  # checked before the first page
    lambda c: c.batch_get_by_user([]),
    lambda c: c.batch_get_by_user(["a"], limit=101),
    lambda c: c.transfer_customer("a", "b", [f"wm{i}" for i in range(101)]),
    lambda c: c.resigned_transfer_customer("a", "b", [f"wm{i}" for i in range(101)]),
    lambda c: c.groupchat_transfer([f"wr{i}" for i in range(101)], "b"),
    lambda c: c.groupchat_onjob_transfer([], "b"),
    lambda c: c.iter_groupchats(owner_userids=[f"u{i}" for i in range(101)]),
    lambda c: c.iter_groupchats(limit=1001),
    lambda c: c.iter_unassigned(page_size=0),
    lambda c: c.mark_tag("a", "wm"),
    lambda c: c.remark("a", "wm"),
    lambda c: c.del_corp_tag(),
    lambda c: c.add_corp_tag(group_name="g", tags=[]),
    lambda c: c.send_welcome_msg("code"),
    lambda c: c.send_app_message(1000002, ["a"]),
    lambda c: c.upload_media("pdf", "a.pdf", b"12345678", "application/pdf"),
], ids=lambda _: "")
def test_documented_limits_are_refused_before_any_call(wecom: responses.RequestsMock,
                                                       call: Callable[[WeComClient], Any]) -> None:
    with pytest.raises(ValueError):
        call(make_client())
    assert len(wecom.calls) == 0


# ---------------------------------------------------------------- bodies, errors, logs, counters


def test_json_bodies_are_utf8_not_escaped(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("POST", API + "/cgi-bin/externalcontact/remark", json=OK)
    make_client().remark("zhangsan", "wm1", remark="李部长", remark_mobiles=[""])
    call = [c for c in wecom.calls if c.request.url.startswith(API + "/cgi-bin/externalcontact/remark")][0]
    assert "李部长".encode() in call.request.body
    assert call.request.headers["Content-Type"].startswith("application/json")
    assert json.loads(call.request.body) == {"userid": "zhangsan", "external_userid": "wm1", "remark": "李部长",
                                             "remark_mobiles": [""]}


def test_secrets_and_tokens_never_reach_logs_or_errors(wecom: responses.RequestsMock,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="scrm")
    leaky = requests.ConnectionError(f"Max retries exceeded with url: /cgi-bin/gettoken?corpid={CORP}"
                                     f"&corpsecret={SECRET} (Caused by reset)")
    wecom.add("GET", TOKEN_URL, body=leaky)
    with pytest.raises(WeComError) as info:
        make_client(max_retries=1).access_token()
    assert info.value.errcode == -2 and "corpsecret=***" in info.value.errmsg
    token_server(wecom)
    wecom.replace("GET", TOKEN_URL, json={**OK, "access_token": "SECRET-TOKEN-1", "expires_in": 7200})
    wecom.add("POST", API + MARK_TAG,
              body=requests.ReadTimeout(f"read timeout: {MARK_TAG}?access_token=SECRET-TOKEN-1"))
    client = make_client(max_retries=1)
    with pytest.raises(WeComError) as info:
        client.mark_tag("u", "wm", add_tag=["et"])
    assert "SECRET-TOKEN-1" not in str(info.value)
    assert "wecom.api.retry" in caplog.text and "wecom.api.error" in caplog.text
    assert SECRET not in caplog.text and "SECRET-TOKEN-1" not in caplog.text
    assert SECRET not in repr(client)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_call_counts_count_every_attempt(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("POST", API + MARK_TAG, json={"errcode": -1, "errmsg": "busy"})
    wecom.add("POST", API + MARK_TAG, json=OK)
    reset_call_counts()
    make_client().mark_tag("u", "wm", add_tag=["et"])
    assert call_counts() == {"/cgi-bin/gettoken": 1, MARK_TAG: 2}
    reset_call_counts()
    assert call_counts() == {}


@pytest.mark.parametrize(("errcode", "http_status", "transient"), [
    (-1, 200, True), (45009, 200, True), (45033, 200, True), (-2, None, True), (-3, 500, True),
    (-3, 503, True), (-3, 429, True), (-3, 404, False), (-3, None, False), (-4, 200, False),
    (40001, 200, False), (40014, 200, False), (42001, 200, False), (40068, 200, False), (84061, 200, False),
])
def test_transient_classification(errcode: int, http_status: int | None, transient: bool) -> None:
    error = WeComError(errcode, "msg", "/cgi-bin/x", http_status)
    assert error.transient is transient
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.errcode, copy.errmsg, copy.path, copy.http_status) == (errcode, "msg", "/cgi-bin/x", http_status)
    assert "errcode=%d" % errcode in str(error)


def test_low_level_get_and_post_return_the_whole_answer(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("GET", API + "/cgi-bin/getcallbackip", json={**OK, "ip_list": ["1.2.3.4"]})
    wecom.add("POST", API + "/cgi-bin/externalcontact/opengid_to_chatid", json={**OK, "chat_id": "wr1"})
    client = make_client()
    assert client.get("/cgi-bin/getcallbackip")["ip_list"] == ["1.2.3.4"]
    assert client.post("/cgi-bin/externalcontact/opengid_to_chatid", {"opengid": "g"}, params={"debug": 1}) == \
        {**OK, "chat_id": "wr1"}
    call = wecom.calls[-1]
    query = parse_qs(urlparse(call.request.url).query)
    assert query["debug"] == ["1"] and query["access_token"] == [f"tok-{SECRET}-1"]


def test_app_message_and_media_upload_bodies(wecom: responses.RequestsMock) -> None:
    token_server(wecom)
    wecom.add("POST", API + "/cgi-bin/message/send", json={**OK, "invaliduser": "", "msgid": "m1"})
    wecom.add("POST", API + "/cgi-bin/media/upload",
              json={"errcode": 0, "errmsg": "", "type": "image", "media_id": "M1", "created_at": "1380000000"})
    client = make_client()
    assert client.send_app_message(1000002, ["a", "b"], text="你好") == {"invaliduser": "", "msgid": "m1"}
    sent = json.loads(wecom.calls[-1].request.body)
    assert sent == {"touser": "a|b", "agentid": 1000002, "msgtype": "text", "text": {"content": "你好"}}
    media = client.upload_media("image", "a.png", b"\x89PNG-bytes", "image/png")
    assert media == {"type": "image", "media_id": "M1", "created_at": "1380000000"}
    request = wecom.calls[-1].request
    assert parse_qs(urlparse(request.url).query)["type"] == ["image"]
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="media"; filename="a.png"' in request.body and b"\x89PNG-bytes" in request.body


# ---------------------------------------------------------------- clients of the running app


def test_app_clients_are_built_from_settings_once_per_app(db_session: Any, app: Any) -> None:
    contact = contact_client()
    agent = agent_client()
    assert contact is contact_client() and agent is agent_client()
    assert contact is not agent
    assert contact.corp_id == app.extensions["scrm.settings"].WECOM_CORP_ID
    assert contact.api_base == app.extensions["scrm.settings"].WECOM_API_BASE.rstrip("/")
    assert contact.timeout == app.extensions["scrm.settings"].WECOM_TIMEOUT
    assert isinstance(contact.token_store, DatabaseTokenStore)
    assert contact._key("access_token") != agent._key("access_token")
