"""The callback endpoint and the inbox: real encrypted callbacks in, one row per distinct event."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from core.db import db, dispose_engines, utcnow
from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from wecom import dispatch
from wecom.crypto import CallbackCrypto, parse_xml
from wecom.models import InboxEvent
from core.queue import set_wake_hook
from wecom.service import inbox_stats, payload_hash, store_event

URL = "/wecom/callback"
CRYPTO = CallbackCrypto(TEST_SETTINGS["WECOM_TOKEN"], TEST_SETTINGS["WECOM_ENCODING_AES_KEY"], TEST_CORP_ID)
OTHER_CORP = CallbackCrypto(TEST_SETTINGS["WECOM_TOKEN"], TEST_SETTINGS["WECOM_ENCODING_AES_KEY"], "wwother000000002")


def event_xml(event: str, change_type: str, fields: str, create_time: int = 1732420000) -> str:
    """A self-built app's decrypted customer-contact callback (wecom-api.md §3)."""
    return (f"<xml><ToUserName><![CDATA[{TEST_CORP_ID}]]></ToUserName>\n"
            f"<FromUserName><![CDATA[sys]]></FromUserName>\n<CreateTime>{create_time}</CreateTime>\n"
            f"<MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[{event}]]></Event>\n"
            f"<ChangeType><![CDATA[{change_type}]]></ChangeType>\n{fields}\n</xml>")


def add_contact(external_userid: str = "wmCUSTOMER0001", userid: str = "zhangsan", create_time: int = 1732420000) -> str:
    return event_xml("change_external_contact", "add_external_contact",
                     f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external_userid}]]>"
                     "</ExternalUserID><State><![CDATA[展会-上海]]></State><WelcomeCode><![CDATA[WELCOME1]]>"
                     "</WelcomeCode>", create_time)


# Every event of §3, as WeCom writes it, with the fields the inbox must have parsed.
EVENTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("change_external_contact", "add_external_contact",
     "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0001]]></ExternalUserID>"
     "<State><![CDATA[展会-上海]]></State><WelcomeCode><![CDATA[WELCOME1]]></WelcomeCode>",
     {"UserID": "zhangsan", "ExternalUserID": "wmCUSTOMER0001", "State": "展会-上海", "WelcomeCode": "WELCOME1"}),
    ("change_external_contact", "add_half_external_contact",
     "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0002]]></ExternalUserID>"
     "<State><![CDATA[官网]]></State><WelcomeCode><![CDATA[WELCOME2]]></WelcomeCode>",
     {"ExternalUserID": "wmCUSTOMER0002", "State": "官网", "WelcomeCode": "WELCOME2"}),
    ("change_external_contact", "edit_external_contact",
     "<UserID><![CDATA[lisi]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0001]]></ExternalUserID>",
     {"UserID": "lisi", "ExternalUserID": "wmCUSTOMER0001"}),
    ("change_external_contact", "del_external_contact",
     "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0001]]></ExternalUserID>"
     "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>",
     {"UserID": "zhangsan", "ExternalUserID": "wmCUSTOMER0001", "Source": "DELETE_BY_TRANSFER"}),
    ("change_external_contact", "del_follow_user",
     "<UserID><![CDATA[wangwu]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0003]]></ExternalUserID>",
     {"UserID": "wangwu", "ExternalUserID": "wmCUSTOMER0003"}),
    ("change_external_contact", "transfer_fail",
     "<FailReason><![CDATA[customer_refused]]></FailReason><UserID><![CDATA[lisi]]></UserID>"
     "<ExternalUserID><![CDATA[wmCUSTOMER0004]]></ExternalUserID>",
     {"FailReason": "customer_refused", "UserID": "lisi", "ExternalUserID": "wmCUSTOMER0004"}),
    ("change_external_contact", "msg_audit_approved",
     "<UserID><![CDATA[lisi]]></UserID><ExternalUserID><![CDATA[wmCUSTOMER0004]]></ExternalUserID>"
     "<WelcomeCode><![CDATA[WELCOME3]]></WelcomeCode>",
     {"WelcomeCode": "WELCOME3"}),
    ("change_external_chat", "create", "<ChatId><![CDATA[wrCHAT0001]]></ChatId>", {"ChatId": "wrCHAT0001"}),
    ("change_external_chat", "update",
     "<ChatId><![CDATA[wrCHAT0001]]></ChatId><UpdateDetail><![CDATA[add_member]]></UpdateDetail>"
     "<JoinScene>3</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>2</MemChangeCnt>"
     "<MemChangeList><Item>wmCUSTOMER0001</Item><Item>zhangsan</Item></MemChangeList>"
     "<LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer><CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>",
     {"ChatId": "wrCHAT0001", "UpdateDetail": "add_member", "JoinScene": "3", "MemChangeCnt": "2",
      "MemChangeList": ["wmCUSTOMER0001", "zhangsan"], "CurMemVer": "71217227bbd112ecfe3a49c482195cb4"}),
    ("change_external_chat", "dismiss", "<ChatId><![CDATA[wrCHAT0002]]></ChatId>", {"ChatId": "wrCHAT0002"}),
    ("change_external_tag", "create",
     "<Id><![CDATA[etTAG0001]]></Id><TagType><![CDATA[tag]]></TagType><StrategyId>1</StrategyId>",
     {"Id": "etTAG0001", "TagType": "tag", "StrategyId": "1"}),
    ("change_external_tag", "update", "<Id><![CDATA[etGROUP01]]></Id><TagType><![CDATA[tag_group]]></TagType>",
     {"Id": "etGROUP01", "TagType": "tag_group"}),
    ("change_external_tag", "delete", "<Id><![CDATA[etTAG0001]]></Id><TagType><![CDATA[tag]]></TagType>",
     {"Id": "etTAG0001", "TagType": "tag"}),
    ("change_external_tag", "shuffle", "<Id><![CDATA[]]></Id>", {"Id": None}),
]


def post(client: Any, plaintext: str, crypto: CallbackCrypto = CRYPTO) -> Any:
    query, body = crypto.encrypt_envelope(plaintext)
    return client.post(URL, query_string=query, data=body, content_type="text/xml")


def rows() -> list[InboxEvent]:
    return list(db.session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(InboxEvent)) or 0


def logged(caplog: pytest.LogCaptureFixture, key: str) -> bool:
    return any(r.getMessage().startswith(key) for r in caplog.records)


@pytest.fixture()
def handlers(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Any]:
    """This app's handler table, replaced for the test by an empty one the test may fill."""
    table: dict[tuple[str, str], Any] = {}
    monkeypatch.setitem(app.extensions, dispatch.EXTENSION_KEY, table)
    return table


# ---------------------------------------------------------------- URL check


def test_url_check_answers_the_plain_echo(client: Any) -> None:
    check = CRYPTO.encrypt_echostr("6219435091812093417")
    resp = client.get(URL, query_string=check)
    assert resp.status_code == 200
    assert resp.data == b"6219435091812093417"  # exactly, no newline, no quotes
    assert resp.mimetype == "text/plain"


def test_url_check_refusals(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scrm")
    check = CRYPTO.encrypt_echostr("1")
    assert client.get(URL, query_string={**check, "echostr": ""}).status_code == 400
    assert logged(caplog, "wecom.callback.missing-params")
    assert client.get(URL, query_string={**check, "nonce": "other"}).status_code == 403
    assert logged(caplog, "wecom.callback.bad-signature")
    other = OTHER_CORP.encrypt_echostr("1")
    assert client.get(URL, query_string=other).status_code == 403
    assert logged(caplog, "wecom.callback.wrong-corp")


@pytest.fixture()
def vector_a_app(database_url: str, tmp_path: Any) -> Iterator[Flask]:
    """A second app configured with the official vector's corp (wecom-api.md §2.4 A), same database."""
    from app import create_app

    application = create_app({**TEST_SETTINGS, "TESTING": True, "DATABASE_URL": database_url,
                              "SECRET_KEY": "x", "SCRM_EMBEDDED_WORKER": False, "WECOM_TOKEN": "QDG6eK",
                              "WECOM_ENCODING_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                              "WECOM_CORP_ID": "wx5823bf96d3bd56c7",
                              "SCRM_CALLBACK_MAX_SKEW": 0})  # the official vectors were signed in 2014
    application.instance_path = str(tmp_path)
    yield application
    dispose_engines(application)


def test_official_vector_a_through_the_endpoint(vector_a_app: Flask, db_session: Any) -> None:
    a_client = vector_a_app.test_client()
    resp = a_client.get("/wecom/callback?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589"
                        "&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp"
                        "%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
    assert (resp.status_code, resp.data) == (200, b"1616140317555161061")
    from tests.wecom.test_crypto import A2_ENCRYPT, A2_MSG

    body = (f"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{A2_ENCRYPT}]]>"
            f"</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
    resp = a_client.post("/wecom/callback?msg_signature=477715d11cdb4164915debcba66cb864d751f3e6"
                         "&timestamp=1409659813&nonce=1372623149", data=body)
    assert (resp.status_code, resp.data) == (200, b"success")
    (row,) = rows()
    assert (row.corp_id, row.payload, row.event, row.status) == ("wx5823bf96d3bd56c7", A2_MSG, "text", "ignored")


# ---------------------------------------------------------------- events


@pytest.mark.parametrize("event,change_type,fields,expected", EVENTS, ids=[f"{e[0]}.{e[1]}" for e in EVENTS])
def test_every_customer_contact_event_is_stored_once(client: Any, event: str, change_type: str, fields: str,
                                                     expected: dict[str, Any]) -> None:
    plaintext = event_xml(event, change_type, fields)
    resp = post(client, plaintext)
    assert (resp.status_code, resp.data) == (200, b"success")
    (row,) = rows()
    assert (row.corp_id, row.event, row.change_type) == (TEST_CORP_ID, event, change_type)
    assert row.payload == plaintext and row.payload_hash == payload_hash(plaintext)
    assert row.data == parse_xml(plaintext)
    assert {k: row.data.get(k) for k in expected} == expected
    assert row.data["CreateTime"] == "1732420000" and row.data["FromUserName"] == "sys"
    assert row.duplicates == 0 and row.attempts == 0
    handled = dispatch.handler_for(event, change_type) is not None
    assert row.status == ("pending" if handled else "ignored")


def test_handled_event_is_pending_and_wakes_the_worker(app: Flask, client: Any, handlers: dict) -> None:
    dispatch.register(app, "change_external_contact", "add_external_contact", lambda ev: None)
    woken: list[int] = []
    set_wake_hook(app, lambda: woken.append(count()))  # called after the commit: the row is visible
    try:
        assert post(client, add_contact()).data == b"success"
    finally:
        set_wake_hook(app, None)
    (row,) = rows()
    assert row.status == "pending" and row.next_attempt_at is not None and row.processed_at is None
    assert woken == [1]


def test_known_event_without_handler_is_ignored(client: Any, handlers: dict) -> None:
    assert post(client, add_contact()).data == b"success"
    (row,) = rows()
    assert row.status == "ignored" and row.processed_at is not None


def test_unknown_event_type_is_stored_as_ignored(app: Flask, client: Any) -> None:
    woken: list[bool] = []
    set_wake_hook(app, lambda: woken.append(True))
    try:
        resp = post(client, event_xml("change_external_future", "teleport", "<Id><![CDATA[x]]></Id>"))
    finally:
        set_wake_hook(app, None)
    assert (resp.status_code, resp.data) == (200, b"success")
    (row,) = rows()
    assert (row.event, row.change_type, row.status) == ("change_external_future", "teleport", "ignored")
    assert not dispatch.is_known("change_external_future", "teleport") and woken == []


def test_a_failing_wake_hook_does_not_fail_the_answer(app: Flask, client: Any, handlers: dict,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    dispatch.register(app, "change_external_contact", "add_external_contact", lambda ev: None)

    def broken() -> None:
        raise RuntimeError("worker gone")

    set_wake_hook(app, broken)
    try:
        assert post(client, add_contact()).status_code == 200
    finally:
        set_wake_hook(app, None)
    assert count() == 1 and logged(caplog, "core.queue.wake-failed")


# ---------------------------------------------------------------- idempotency


def test_the_same_callback_three_times_is_one_row(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="scrm")
    plaintext = add_contact()
    query, body = CRYPTO.encrypt_envelope(plaintext)
    answers = [client.post(URL, query_string=query, data=body).data for _ in range(2)]
    answers.append(post(client, plaintext).data)  # re-encrypted by a retry: other nonce, other ciphertext
    assert answers == [b"success"] * 3
    (row,) = rows()
    assert row.duplicates == 2
    assert sum(r.getMessage().startswith("wecom.callback.duplicate") for r in caplog.records) == 2


def test_two_different_events_in_the_same_second_are_two_rows(client: Any) -> None:
    first = add_contact("wmCUSTOMER0001", "zhangsan", create_time=1732420000)
    second = add_contact("wmCUSTOMER0002", "zhangsan", create_time=1732420000)
    assert post(client, first).data == post(client, second).data == b"success"
    assert [r.data["ExternalUserID"] for r in rows()] == ["wmCUSTOMER0001", "wmCUSTOMER0002"]
    assert all(r.duplicates == 0 for r in rows())


def test_same_payload_for_two_corps_is_two_rows(db_session: Any) -> None:
    plaintext = add_contact()
    assert store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).created is True
    assert store_event("wwother000000002", plaintext, parse_xml(plaintext)).created is True
    again = store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext))
    assert again.created is False and again.duplicates == 1 and count() == 2


# ---------------------------------------------------------------- refusals: nothing stored


def _tampered() -> tuple[dict[str, str], bytes]:
    query, body = CRYPTO.encrypt_envelope(add_contact())
    raw = bytearray(base64.b64decode(parse_xml(body)["Encrypt"]))
    raw[-17] ^= 0x01  # changes the pad byte through CBC
    encrypted = base64.b64encode(bytes(raw)).decode()
    query = {**query, "msg_signature": CRYPTO.signature(query["timestamp"], query["nonce"], encrypted)}
    return query, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()


def _signed_body(body: bytes) -> tuple[dict[str, str], bytes]:
    return {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "abc"}, body


BOMB = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>')


def _case(name: str) -> tuple[dict[str, str], bytes]:
    query, body = CRYPTO.encrypt_envelope(add_contact())
    if name == "missing-params":
        return {"timestamp": query["timestamp"]}, body
    if name == "bad-signature":
        return {**query, "msg_signature": "f" * 40}, body
    if name == "tampered":
        return _tampered()
    if name == "other-corp":
        return OTHER_CORP.encrypt_envelope(add_contact())
    if name == "malformed-outer":
        return query, body[:-5]
    if name == "no-encrypt":
        return query, b"<xml><ToUserName><![CDATA[wwtest0000000001]]></ToUserName></xml>"
    if name == "bomb-outer":
        return _signed_body((BOMB + "<xml><Encrypt>&e;</Encrypt></xml>").encode())
    if name == "bomb-inner":
        return CRYPTO.encrypt_envelope(BOMB + add_contact().replace("展会-上海", "&e;"))
    if name == "too-large":
        return query, body + b" " * (256 * 1024)
    raise AssertionError(name)


@pytest.mark.parametrize("name,status,key", [
    ("missing-params", 400, "wecom.callback.missing-params"),
    ("bad-signature", 403, "wecom.callback.bad-signature"),
    ("tampered", 403, "wecom.callback.decrypt-failed"),
    ("other-corp", 403, "wecom.callback.wrong-corp"),
    ("malformed-outer", 400, "wecom.callback.malformed"),
    ("no-encrypt", 400, "wecom.callback.malformed"),
    ("bomb-outer", 400, "wecom.callback.malformed"),
    ("bomb-inner", 400, "wecom.callback.malformed"),
    ("too-large", 413, "wecom.callback.too-large"),
])
def test_invalid_input_is_refused_and_nothing_is_stored(client: Any, caplog: pytest.LogCaptureFixture,
                                                        name: str, status: int, key: str) -> None:
    caplog.set_level(logging.INFO, logger="scrm")
    query, body = _case(name)
    resp = client.post(URL, query_string=query, data=body, content_type="text/xml")
    assert resp.status_code == status
    assert resp.mimetype == "text/plain" and 0 < len(resp.data) < 200
    assert logged(caplog, key)
    assert [r.getMessage().split()[0] for r in caplog.records if r.name == "scrm.wecom"] == [key]
    assert count() == 0


def test_missing_params_body_names_them(client: Any) -> None:
    resp = client.post(URL, query_string={"timestamp": "1"}, data=b"<xml/>")
    assert resp.data == b"missing query parameters: msg_signature, nonce"


# ---------------------------------------------------------------- over real HTTP


def test_same_payload_from_many_threads_at_once_is_one_row(live_server: Any, db_session: Any) -> None:
    """On PostgreSQL (the production engine) the unique conflict is real; SQLite serialises the writers."""
    db_session.rollback()  # hold no read transaction while the server writes
    plaintext = add_contact()
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[tuple[int, str]] = []
    lock = threading.Lock()

    def send() -> None:
        query, body = CRYPTO.encrypt_envelope(plaintext)
        with requests.Session() as session:
            barrier.wait(timeout=10)
            resp = session.post(live_server.url + URL, params=query, data=body, timeout=10)
        with lock:
            statuses.append((resp.status_code, resp.text))

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [(200, "success")] * n
    (row,) = rows()
    assert row.duplicates == n - 1


def test_a_burst_of_distinct_and_repeated_callbacks_is_one_row_each(live_server: Any, db_session: Any) -> None:
    """Many threads at once, so the writer batches: every payload one row, every repeat counted on it."""
    db_session.rollback()
    payloads = [add_contact(f"wmBURST{i:04d}") for i in range(60)]
    sends = [p for p in payloads for _ in range(2 if payloads.index(p) % 3 == 0 else 1)]  # every third twice
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def send(chunk: list[str]) -> None:
        with requests.Session() as session:
            for plaintext in chunk:
                query, body = CRYPTO.encrypt_envelope(plaintext)
                resp = session.post(live_server.url + URL, params=query, data=body, timeout=10)
                with lock:
                    results.append((resp.status_code, resp.text))

    threads = [threading.Thread(target=send, args=(sends[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [(200, "success")] * len(sends)
    stored = {r.payload_hash: r.duplicates for r in rows()}
    assert stored == {payload_hash(p): (1 if i % 3 == 0 else 0) for i, p in enumerate(payloads)}


def test_the_same_payload_twice_in_one_batch_is_one_row_and_one_duplicate(app: Flask, db_session: Any) -> None:
    from wecom.service import InboxWriter, _Slot

    writer = InboxWriter(db.engine.url, db.engine.dialect.name)
    try:
        now = utcnow()

        def values(plaintext: str) -> dict[str, Any]:
            return {"corp_id": TEST_CORP_ID, "payload_hash": payload_hash(plaintext), "event": "change_external_contact",
                    "change_type": "add_external_contact", "payload": plaintext, "data": {}, "received_at": now,
                    "duplicates": 0, "status": "ignored", "attempts": 0, "next_attempt_at": None,
                    "processed_at": now, "deadline": None}

        a, b = add_contact("wmA"), add_contact("wmB")
        batch = [_Slot(values(a)), _Slot(values(b)), _Slot(values(a))]
        writer._write(batch)  # noqa: SLF001  (one batch, as a burst would make it)
        assert [s.error for s in batch] == [None] * 3
        assert batch[0].result is not None and batch[2].result is not None
        assert batch[0].result[0] == batch[2].result[0] != batch[1].result[0]  # type: ignore[index]
        assert [s.result[1] for s in batch] == [0, 0, 1]  # type: ignore[index]
        again = [_Slot(values(a)), _Slot(values(a))]
        writer._write(again)  # noqa: SLF001
        assert [s.result for s in again] == [(batch[0].result[0], 2), (batch[0].result[0], 3)]
        db_session.rollback()
        assert {r.payload_hash: r.duplicates for r in rows()} == {payload_hash(a): 3, payload_hash(b): 0}
    finally:
        writer.dispose()


def test_chunked_oversized_body_is_413(live_server: Any) -> None:
    query, body = CRYPTO.encrypt_envelope(add_contact())

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield body
        for _ in range(40):
            yield b" " * 8192

    resp = requests.post(live_server.url + URL, params=query, data=chunks(), timeout=10)
    assert resp.status_code == 413
    assert count() == 0


# ---------------------------------------------------------------- backlog figures


def test_inbox_stats(db_session: Any) -> None:
    assert inbox_stats(TEST_CORP_ID) == {"pending": 0, "failed": 0, "oldest_pending_age_s": 0.0}
    for i, status in enumerate(["pending", "pending", "failed", "done", "ignored"]):
        plaintext = add_contact(f"wmCUSTOMER{i:04d}")
        row = db.session.get(InboxEvent, store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).id)
        row.status = status
        row.received_at = utcnow() - dt.timedelta(minutes=10 - i)
        db_session.commit()  # the callback path writes on a connection of its own
    plaintext = add_contact("wmOTHERCORP")
    db.session.get(InboxEvent, store_event("wwother000000002", plaintext, parse_xml(plaintext)).id).status = "pending"
    db_session.commit()
    stats = inbox_stats(TEST_CORP_ID)
    assert (stats["pending"], stats["failed"]) == (2, 1)
    assert 600 <= stats["oldest_pending_age_s"] < 660


def test_a_stale_or_future_timestamp_is_refused_and_nothing_is_stored(client: Any, caplog: Any) -> None:
    query, body = CRYPTO.encrypt_envelope(add_contact(), timestamp=int(time.time()) - 2 * 86400)
    stale = client.post(URL, query_string=query, data=body, content_type="text/xml")
    assert stale.status_code == 403 and logged(caplog, "wecom.callback.stale-timestamp")
    query, body = CRYPTO.encrypt_envelope(add_contact(), timestamp=int(time.time()) + 2 * 86400)
    assert client.post(URL, query_string=query, data=body, content_type="text/xml").status_code == 403
    query, body = CRYPTO.encrypt_envelope(add_contact())
    bad = client.post(URL, query_string={**query, "timestamp": "soon"}, data=body, content_type="text/xml")
    assert bad.status_code == 400 and logged(caplog, "wecom.callback.bad-timestamp")
    assert rows() == []
    query, body = CRYPTO.encrypt_envelope(add_contact(), timestamp=int(time.time()) - 3600)  # a retry an hour on
    assert client.post(URL, query_string=query, data=body, content_type="text/xml").status_code == 200
    assert len(rows()) == 1


def test_a_signed_plaintext_nested_too_deeply_is_a_400_stored_nowhere(client: Any, caplog: Any) -> None:
    deep = "<a>" * 40 + "x" + "</a>" * 40
    plaintext = (f"<xml><ToUserName><![CDATA[{TEST_CORP_ID}]]></ToUserName><MsgType><![CDATA[event]]></MsgType>"
                 f"<Event><![CDATA[change_external_contact]]></Event><Deep>{deep}</Deep></xml>")
    answer = post(client, plaintext)
    assert answer.status_code == 400 and logged(caplog, "wecom.callback.malformed")
    assert rows() == []
