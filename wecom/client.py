"""The WeCom server API client: the only way the project talks to WeCom.

A thin client on an injected `requests.Session` (wecom-api.md §0–§9, §13):

- every request (gettoken and ticket fetches included) carries an explicit `timeout=`;
- WeCom reports failures inside HTTP 200; every failure becomes one `WeComError` with
  `errcode`/`errmsg`/`path`/`http_status`. Network failures and timeouts are errcode -2, HTTP
  status errors -3, malformed answers (not JSON, a cursor that does not advance) -4;
- transient failures (-1, 45009, 45033, network errors, timeouts, HTTP 5xx/429) are retried at
  most `max_retries` times with exponential backoff and jitter; everything else raises at once.
  Calls that create something (a mass message, an app message, a transfer, …) are not repeated
  after a read timeout or a 5xx, because WeCom may have done them already (see `NOT_IDEMPOTENT`);
- 40014/42001 on a business call: the token is invalidated and fetched again ONCE, then the call
  is repeated once; gettoken failing (40001 bad secret, …) raises at once;
- tokens and tickets are cached in a `TokenStore` (per corp, kind and secret hash);
- each HTTP attempt is counted per API path (`call_counts()`), for /healthz and benchmarks.

Secrets and tokens never appear in logs or error messages.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import requests
from flask import current_app
from urllib3.exceptions import NewConnectionError

from core.db import db
from core.settings import settings

from .tokens import CredentialKey, DatabaseTokenStore, MemoryTokenStore, TokenStore, credential_key

__all__ = ["WeComClient", "WeComError", "Page", "call_counts", "reset_call_counts", "contact_client",
           "agent_client", "MemoryTokenStore", "DatabaseTokenStore", "TokenStore", "CredentialKey"]

log = logging.getLogger("scrm.wecom.client")

NETWORK_ERROR = -2  # connection error or timeout
HTTP_ERROR = -3  # HTTP status >= 400 (5xx, 429, …)
BAD_RESPONSE = -4  # not JSON, or a pagination cursor that does not advance
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45033})
TOKEN_ERRCODES = frozenset({40014, 42001})
MAX_BACKOFF = 30.0

# Calls that create or send something: after a read timeout or a 5xx WeCom may have acted, so
# they are not repeated automatically (the error is still `transient`; the caller decides).
NOT_IDEMPOTENT = frozenset({
    "/cgi-bin/message/send",
    "/cgi-bin/externalcontact/add_msg_template",
    "/cgi-bin/externalcontact/send_welcome_msg",
    "/cgi-bin/externalcontact/remind_groupmsg_send",
    "/cgi-bin/externalcontact/transfer_customer",
    "/cgi-bin/externalcontact/resigned/transfer_customer",
    "/cgi-bin/externalcontact/groupchat/transfer",
    "/cgi-bin/externalcontact/groupchat/onjob_transfer",
    "/cgi-bin/externalcontact/add_contact_way",
    "/cgi-bin/externalcontact/groupchat/add_join_way",
    "/cgi-bin/media/upload",
})

_SECRET_QUERY = re.compile(r"(access_token|corpsecret)=[^&\s'\"]*")

_CALLS: Counter[str] = Counter()
_CALLS_LOCK = threading.Lock()


def call_counts() -> dict[str, int]:
    """HTTP attempts per API path since start (or the last reset), across all clients."""
    with _CALLS_LOCK:
        return dict(_CALLS)


def reset_call_counts() -> None:
    with _CALLS_LOCK:
        _CALLS.clear()


def _count(path: str) -> None:
    with _CALLS_LOCK:
        _CALLS[path] += 1


def _scrub(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1=***", text)


class WeComError(Exception):
    """A failed WeCom call: WeCom's errcode, or -2 (network/timeout), -3 (HTTP status), -4 (bad answer)."""

    def __init__(self, errcode: int, errmsg: str, path: str, http_status: int | None = None, *,
                 maybe_sent: bool = False) -> None:
        super().__init__(f"{path}: errcode={errcode} errmsg={errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        self.http_status = http_status
        # True when the request may have reached WeCom and been acted on although no answer says so
        # (a read timeout, a 5xx, a garbled answer): a create or send call must then be reconciled by
        # reading WeCom, not simply repeated.
        self.maybe_sent = maybe_sent

    def __reduce__(self) -> Any:
        return (_rebuild_error, (self.errcode, self.errmsg, self.path, self.http_status, self.maybe_sent))

    @property
    def transient(self) -> bool:
        """True when the same call may succeed later (busy, rate limits, network, 5xx/429)."""
        if self.errcode in TRANSIENT_ERRCODES or self.errcode == NETWORK_ERROR:
            return True
        if self.errcode == HTTP_ERROR:
            return self.http_status is not None and (self.http_status >= 500 or self.http_status == 429)
        return False


def _rebuild_error(errcode: int, errmsg: str, path: str, http_status: int | None, maybe_sent: bool) -> WeComError:
    return WeComError(errcode, errmsg, path, http_status, maybe_sent=maybe_sent)


@dataclass
class Page:
    """One page of a cursor-paginated answer; `next_cursor` is "" on the last page."""

    items: list[dict[str, Any]]
    next_cursor: str


def _check_count(name: str, values: Iterable[Any], maximum: int, minimum: int = 1) -> list[Any]:
    values = list(values)
    if not minimum <= len(values) <= maximum:
        raise ValueError(f"{name} takes {minimum} to {maximum} items per call, got {len(values)}")
    return values


def _check_range(name: str, value: int, minimum: int, maximum: int) -> int:
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("errcode", "errmsg")}


class WeComClient:
    """One corp + one secret (the customer-contact secret, or an app's secret)."""

    def __init__(self, corp_id: str, secret: str, *, api_base: str = "https://qyapi.weixin.qq.com",
                 token_store: TokenStore | None = None, session: requests.Session | None = None,
                 timeout: float = 10.0, max_retries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, kind: str = "access_token") -> None:
        if not corp_id or not secret:
            raise ValueError("corp_id and secret are required")
        self.corp_id = corp_id
        self._secret = secret
        self.api_base = api_base.rstrip("/")
        self.token_store: TokenStore = token_store if token_store is not None else MemoryTokenStore()
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self._sleep = sleep
        self.kind = kind
        self._fetch_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the secret
        return f"<WeComClient corp={self.corp_id} kind={self.kind} api_base={self.api_base}>"

    def _key(self, kind: str) -> CredentialKey:
        return credential_key(self.corp_id, kind, self._secret)

    # ------------------------------------------------------------------ transport

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None, files: dict[str, Any] | None = None) -> dict[str, Any]:
        """One logical call with the retry policy; returns WeCom's JSON (errcode 0) or raises."""
        url = self.api_base + path
        data = headers = None
        if json is not None:
            data = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
            headers = {"Content-Type": "application/json; charset=utf-8"}
        attempt = 0
        while True:
            _count(path)
            outcome, may_retry = self._attempt(method, path, url, params, data, headers, files)
            if not isinstance(outcome, WeComError):
                return outcome
            error = outcome
            if not (error.transient and may_retry) or attempt >= self.max_retries:
                log.warning("wecom.api.error path=%s errcode=%s errmsg=%s http_status=%s attempts=%s",
                            path, error.errcode, error.errmsg, error.http_status, attempt + 1)
                raise error
            delay = min(MAX_BACKOFF, self.backoff * 2 ** attempt)
            delay += random.uniform(0, delay / 2)
            attempt += 1
            log.info("wecom.api.retry path=%s errcode=%s attempt=%s delay=%.2f",
                     path, error.errcode, attempt, delay)
            self._sleep(delay)

    def _attempt(self, method: str, path: str, url: str, params: dict[str, Any] | None, data: bytes | None,
                 headers: dict[str, str] | None, files: dict[str, Any] | None
                 ) -> tuple[dict[str, Any] | WeComError, bool]:
        """One HTTP attempt: (answer, _) on success, else (error, whether repeating it is safe)."""
        safe = path not in NOT_IDEMPOTENT
        try:
            resp = self.session.request(method, url, params=params, data=data, headers=headers, files=files,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            # The exception text carries the URL (with the token or secret): scrub it.
            not_sent = _not_sent(exc)
            error = WeComError(NETWORK_ERROR, f"{exc.__class__.__name__}: {_scrub(str(exc))}", path,
                               maybe_sent=not not_sent)
            return error, safe or not_sent
        if resp.status_code >= 400:
            error = WeComError(HTTP_ERROR, f"HTTP {resp.status_code}", path, resp.status_code,
                               maybe_sent=resp.status_code != 429)
            return error, safe or resp.status_code == 429
        try:
            body = resp.json()
        except ValueError:
            return WeComError(BAD_RESPONSE, "answer is not JSON", path, resp.status_code, maybe_sent=True), False
        if not isinstance(body, dict):
            return WeComError(BAD_RESPONSE, "answer is not a JSON object", path, resp.status_code,
                              maybe_sent=True), False
        errcode = body.get("errcode", 0)
        if errcode in (0, None):
            return body, True
        return WeComError(int(errcode), str(body.get("errmsg", "")), path, resp.status_code), True

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None, files: dict[str, Any] | None = None) -> dict[str, Any]:
        """A business call with the access token; one token refresh on 40014/42001."""
        token = self.access_token()
        try:
            return self._send(method, path, params={**(params or {}), "access_token": token}, json=json,
                              files=files)
        except WeComError as exc:
            if exc.errcode not in TOKEN_ERRCODES:
                raise
            log.info("wecom.token.rejected path=%s errcode=%s", path, exc.errcode)
        token = self._refresh_token(token)
        return self._send(method, path, params={**(params or {}), "access_token": token}, json=json, files=files)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET a business API (token and retry policy applied); WeCom's whole answer."""
        return self._call("GET", path, params=params)

    def post(self, path: str, json: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST JSON to a business API (token and retry policy applied); WeCom's whole answer."""
        return self._call("POST", path, params=params, json=json if json is not None else {})

    # ------------------------------------------------------------------ tokens and tickets

    def access_token(self, force_refresh: bool = False) -> str:
        """The cached token, or a new one from gettoken (which WeCom answers with the current one)."""
        key = self._key(self.kind)
        if force_refresh:
            self.token_store.invalidate(key)
        else:
            token = self.token_store.get(key)
            if token:
                return token
        with self._fetch_lock:
            if not force_refresh:
                token = self.token_store.get(key)  # another thread may have fetched it meanwhile
                if token:
                    return token
            return self._fetch_token(key)

    def _fetch_token(self, key: CredentialKey) -> str:
        data = self._send("GET", "/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret})
        token = data.get("access_token")
        if not token:
            raise WeComError(BAD_RESPONSE, "gettoken answered without access_token", "/cgi-bin/gettoken")
        self.token_store.set(key, token, int(data.get("expires_in") or 7200))
        log.info("wecom.token.fetched corp=%s kind=%s", self.corp_id, self.kind)
        return token

    def _refresh_token(self, rejected: str) -> str:
        """Replace a token WeCom rejected, unless another thread or process already did."""
        key = self._key(self.kind)
        self.token_store.invalidate(key, rejected)
        with self._fetch_lock:
            token = self.token_store.get(key)
            if token and token != rejected:
                return token
            return self._fetch_token(key)

    def _ticket(self, kind: str, path: str, params: dict[str, Any] | None = None) -> str:
        key = self._key(kind)
        ticket = self.token_store.get(key)
        if ticket:
            return ticket
        with self._fetch_lock:
            ticket = self.token_store.get(key)
            if ticket:
                return ticket
        # The lock is not held across the call: fetching the token may need it.
        data = self.get(path, params)
        ticket = data.get("ticket")
        if not ticket:
            raise WeComError(BAD_RESPONSE, "answer without ticket", path)
        self.token_store.set(key, ticket, int(data.get("expires_in") or 7200))
        return ticket

    def get_jsapi_ticket(self) -> str:
        """The corp jsapi_ticket for wx.config (§8.2), cached as kind "jsapi_ticket"."""
        return self._ticket("jsapi_ticket", "/cgi-bin/get_jsapi_ticket")

    def get_agent_ticket(self) -> str:
        """The app ticket for wx.agentConfig (§8.2), cached as kind "agent_ticket"; use the agent client."""
        return self._ticket("agent_ticket", "/cgi-bin/ticket/get", {"type": "agent_config"})

    def get_user_info(self, code: str) -> dict[str, Any]:
        """OAuth code → {"userid", …} for members or {"openid", "external_userid"} otherwise (§8.4)."""
        return _strip(self.get("/cgi-bin/auth/getuserinfo", {"code": code}))

    # ------------------------------------------------------------------ pagination

    def _pages(self, path: str, body: dict[str, Any], list_key: str, cursor: str = "") -> Iterator[Page]:
        while True:
            data = self.post(path, {**body, "cursor": cursor})
            next_cursor = data.get("next_cursor") or ""
            yield Page(items=list(data.get(list_key) or []), next_cursor=next_cursor)
            if not next_cursor:
                return
            if next_cursor == cursor:
                raise WeComError(BAD_RESPONSE, "pagination cursor did not advance", path)
            cursor = next_cursor

    def _items(self, path: str, body: dict[str, Any], list_key: str) -> Iterator[dict[str, Any]]:
        for page in self._pages(path, body, list_key):
            yield from page.items

    # ------------------------------------------------------------------ §4 customers

    def get_follow_user_list(self) -> list[str]:
        return list(self.get("/cgi-bin/externalcontact/get_follow_user_list").get("follow_user") or [])

    def list_external_contacts(self, userid: str) -> list[str]:
        return list(self.get("/cgi-bin/externalcontact/list", {"userid": userid}).get("external_userid") or [])

    def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """The customer and ALL their follow users (pages of 500 merged)."""
        path = "/cgi-bin/externalcontact/get"
        params: dict[str, Any] = {"external_userid": external_userid}
        data = self.get(path, params)
        follow = list(data.get("follow_user") or [])
        cursor = data.get("next_cursor") or ""
        while cursor:
            more = self.get(path, {**params, "cursor": cursor})
            follow.extend(more.get("follow_user") or [])
            next_cursor = more.get("next_cursor") or ""
            if next_cursor == cursor:
                raise WeComError(BAD_RESPONSE, "pagination cursor did not advance", path)
            cursor = next_cursor
        return {"external_contact": data.get("external_contact") or {}, "follow_user": follow}

    def _batch_body(self, userid_list: list[str], limit: int) -> dict[str, Any]:
        return {"userid_list": _check_count("userid_list", userid_list, 100),
                "limit": _check_range("limit", limit, 1, 100)}

    def batch_get_by_user(self, userid_list: list[str], cursor: str = "", limit: int = 100) -> Page:
        """One page of (customer, follow_info) rows for ≤100 members (§4.4)."""
        body = {**self._batch_body(userid_list, limit), "cursor": cursor}
        data = self.post("/cgi-bin/externalcontact/batch/get_by_user", body)
        return Page(items=list(data.get("external_contact_list") or []), next_cursor=data.get("next_cursor") or "")

    def iter_batch_get_by_user(self, userid_list: list[str], cursor: str = "",
                               limit: int = 100) -> Iterator[Page]:
        """Every page from `cursor` on; save `page.next_cursor` to resume after a crash."""
        body = self._batch_body(userid_list, limit)  # checked now, not at the first next()
        return self._pages("/cgi-bin/externalcontact/batch/get_by_user", body, "external_contact_list", cursor)

    def get_user(self, userid: str) -> dict[str, Any]:
        """A member's details (name, department, status): GET /cgi-bin/user/get."""
        return _strip(self.get("/cgi-bin/user/get", {"userid": userid}))

    def remark(self, userid: str, external_userid: str, *, remark: str | None = None,
               description: str | None = None, remark_company: str | None = None,
               remark_mobiles: list[str] | None = None, remark_pic_mediaid: str | None = None) -> None:
        """Set a follow relation's remark fields (§4.5); fields left None are not sent."""
        fields = {"remark": remark, "description": description, "remark_company": remark_company,
                  "remark_mobiles": remark_mobiles, "remark_pic_mediaid": remark_pic_mediaid}
        fields = {k: v for k, v in fields.items() if v is not None}
        if not fields:
            raise ValueError("remark needs at least one field to set")
        self.post("/cgi-bin/externalcontact/remark",
                  {"userid": userid, "external_userid": external_userid, **fields})

    def get_corp_tag_list(self, tag_ids: list[str] | None = None,
                          group_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The tag groups with their tags (all when no filter)."""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        return list(self.post("/cgi-bin/externalcontact/get_corp_tag_list", body).get("tag_group") or [])

    def add_corp_tag(self, *, group_id: str | None = None, group_name: str | None = None,
                     order: int | None = None, tags: list[dict[str, Any]]) -> dict[str, Any]:
        """Add tags to a group (by id), or to a group by name (created when missing); the tag_group."""
        if not tags:
            raise ValueError("add_corp_tag needs at least one tag (WeCom cannot create empty groups)")
        if not group_id and not group_name:
            raise ValueError("add_corp_tag needs group_id or group_name")
        body: dict[str, Any] = {"tag": list(tags)}
        for name, value in (("group_id", group_id), ("group_name", group_name), ("order", order)):
            if value is not None:
                body[name] = value
        return dict(self.post("/cgi-bin/externalcontact/add_corp_tag", body).get("tag_group") or {})

    def edit_corp_tag(self, id: str, *, name: str | None = None, order: int | None = None) -> None:
        body: dict[str, Any] = {"id": id}
        if name is not None:
            body["name"] = name
        if order is not None:
            body["order"] = order
        self.post("/cgi-bin/externalcontact/edit_corp_tag", body)

    def del_corp_tag(self, *, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> None:
        if not tag_ids and not group_ids:
            raise ValueError("del_corp_tag needs tag_ids or group_ids")
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        self.post("/cgi-bin/externalcontact/del_corp_tag", body)

    def mark_tag(self, userid: str, external_userid: str, add_tag: Iterable[str] = (),
                 remove_tag: Iterable[str] = ()) -> None:
        """Add/remove corp tags on one follow relation."""
        add, remove = list(add_tag), list(remove_tag)
        if not add and not remove:
            raise ValueError("mark_tag needs add_tag or remove_tag")
        body: dict[str, Any] = {"userid": userid, "external_userid": external_userid}
        if add:
            body["add_tag"] = add
        if remove:
            body["remove_tag"] = remove
        self.post("/cgi-bin/externalcontact/mark_tag", body)

    # ------------------------------------------------------------------ §5 handover

    def transfer_customer(self, handover_userid: str, takeover_userid: str, external_userids: list[str],
                          transfer_success_msg: str | None = None) -> list[dict[str, Any]]:
        """Start on-the-job transfers (≤100 customers); per-customer [{"external_userid", "errcode"}]."""
        body: dict[str, Any] = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                                "external_userid": _check_count("external_userids", external_userids, 100)}
        if transfer_success_msg:
            body["transfer_success_msg"] = transfer_success_msg
        return list(self.post("/cgi-bin/externalcontact/transfer_customer", body).get("customer") or [])

    def iter_transfer_result(self, handover_userid: str, takeover_userid: str) -> Iterator[dict[str, Any]]:
        return self._items("/cgi-bin/externalcontact/transfer_result",
                           {"handover_userid": handover_userid, "takeover_userid": takeover_userid}, "customer")

    def resigned_transfer_customer(self, handover_userid: str, takeover_userid: str,
                                   external_userids: list[str]) -> list[dict[str, Any]]:
        """Start transfers of a resigned member's customers (≤100); per-customer results."""
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                "external_userid": _check_count("external_userids", external_userids, 100)}
        return list(self.post("/cgi-bin/externalcontact/resigned/transfer_customer", body).get("customer") or [])

    def iter_resigned_transfer_result(self, handover_userid: str,
                                      takeover_userid: str) -> Iterator[dict[str, Any]]:
        return self._items("/cgi-bin/externalcontact/resigned/transfer_result",
                           {"handover_userid": handover_userid, "takeover_userid": takeover_userid}, "customer")

    def iter_unassigned(self, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Customers of resigned members waiting to be assigned: {"handover_userid", "external_userid", …}."""
        body = {"page_size": _check_range("page_size", page_size, 1, 1000)}
        return self._items("/cgi-bin/externalcontact/get_unassigned_list", body, "info")

    def _chat_transfer(self, path: str, chat_ids: list[str], new_owner: str) -> list[dict[str, Any]]:
        body = {"chat_id_list": _check_count("chat_ids", chat_ids, 100), "new_owner": new_owner}
        return list(self.post(path, body).get("failed_chat_list") or [])

    def groupchat_transfer(self, chat_ids: list[str], new_owner: str) -> list[dict[str, Any]]:
        """Give groups of a resigned owner to `new_owner`; the failed_chat_list."""
        return self._chat_transfer("/cgi-bin/externalcontact/groupchat/transfer", chat_ids, new_owner)

    def groupchat_onjob_transfer(self, chat_ids: list[str], new_owner: str) -> list[dict[str, Any]]:
        """Give groups of an on-the-job owner to `new_owner`; the failed_chat_list."""
        return self._chat_transfer("/cgi-bin/externalcontact/groupchat/onjob_transfer", chat_ids, new_owner)

    # ------------------------------------------------------------------ §6 group chats

    def iter_groupchats(self, status_filter: int = 0, owner_userids: list[str] | None = None,
                        limit: int = 1000) -> Iterator[dict[str, Any]]:
        """{"chat_id", "status"} of every customer group (of the given owners, ≤100)."""
        body: dict[str, Any] = {"status_filter": status_filter, "limit": _check_range("limit", limit, 1, 1000)}
        if owner_userids is not None:
            body["owner_filter"] = {"userid_list": _check_count("owner_userids", owner_userids, 100)}
        return self._items("/cgi-bin/externalcontact/groupchat/list", body, "group_chat_list")

    def get_groupchat(self, chat_id: str, need_name: bool = True) -> dict[str, Any]:
        data = self.post("/cgi-bin/externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": int(need_name)})
        return dict(data.get("group_chat") or {})

    # ------------------------------------------------------------------ §7 mass messages and welcome

    def add_msg_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a mass message task (§7.1); {"msgid", "fail_list"}. Not retried after a timeout."""
        data = self.post("/cgi-bin/externalcontact/add_msg_template", body)
        return {"msgid": data.get("msgid", ""), "fail_list": list(data.get("fail_list") or [])}

    def iter_groupmsg_list(self, chat_type: str, start_time: int, end_time: int, creator: str | None = None,
                           filter_type: int = 2) -> Iterator[dict[str, Any]]:
        body: dict[str, Any] = {"chat_type": chat_type, "start_time": int(start_time), "end_time": int(end_time),
                                "filter_type": filter_type, "limit": 100}
        if creator:
            body["creator"] = creator
        return self._items("/cgi-bin/externalcontact/get_groupmsg_list_v2", body, "group_msg_list")

    def iter_groupmsg_task(self, msgid: str) -> Iterator[dict[str, Any]]:
        """Per member: {"userid", "status" (0 not sent, 2 sent), "send_time"}."""
        return self._items("/cgi-bin/externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000},
                           "task_list")

    def iter_groupmsg_send_result(self, msgid: str, userid: str) -> Iterator[dict[str, Any]]:
        """Per recipient of one member: {"external_userid"|"chat_id", "status", "send_time"}."""
        return self._items("/cgi-bin/externalcontact/get_groupmsg_send_result",
                           {"msgid": msgid, "userid": userid, "limit": 1000}, "send_list")

    def remind_groupmsg_send(self, msgid: str) -> None:
        self.post("/cgi-bin/externalcontact/remind_groupmsg_send", {"msgid": msgid})

    def cancel_groupmsg_send(self, msgid: str) -> None:
        self.post("/cgi-bin/externalcontact/cancel_groupmsg_send", {"msgid": msgid})

    def send_welcome_msg(self, welcome_code: str, text: str | None = None,
                         attachments: list[dict[str, Any]] | None = None) -> None:
        """Answer a new customer within 20 s of the event (§7.6)."""
        if not text and not attachments:
            raise ValueError("send_welcome_msg needs text or attachments")
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = _check_count("attachments", attachments, 9)
        self.post("/cgi-bin/externalcontact/send_welcome_msg", body)

    # ------------------------------------------------------------------ app messages and media

    def send_app_message(self, agentid: int, touser: list[str], *, text: str | None = None,
                         textcard: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a text or textcard app message to members (use the agent client); {"invaliduser", "msgid"…}."""
        if (text is None) == (textcard is None):
            raise ValueError("send_app_message needs exactly one of text or textcard")
        users = _check_count("touser", touser, 1000)
        body: dict[str, Any] = {"touser": "|".join(users), "agentid": int(agentid)}
        if text is not None:
            body.update(msgtype="text", text={"content": text})
        else:
            body.update(msgtype="textcard", textcard=dict(textcard or {}))
        return _strip(self.post("/cgi-bin/message/send", body))

    def upload_media(self, media_type: str, filename: str, content: bytes, content_type: str) -> dict[str, Any]:
        """Upload temporary media (valid 3 days, §13.2); {"type", "media_id", "created_at"}."""
        if media_type not in ("image", "voice", "video", "file"):
            raise ValueError(f"media_type must be image, voice, video or file, got {media_type!r}")
        data = self._call("POST", "/cgi-bin/media/upload", params={"type": media_type},
                          files={"media": (filename, content, content_type)})
        return _strip(data)

    # ------------------------------------------------------------------ §9.1 contact ways

    def add_contact_way(self, **fields: Any) -> dict[str, Any]:
        """Create a 「联系我」 way; {"config_id", "qr_code"}."""
        return _strip(self.post("/cgi-bin/externalcontact/add_contact_way", fields))

    def get_contact_way(self, config_id: str) -> dict[str, Any]:
        data = self.post("/cgi-bin/externalcontact/get_contact_way", {"config_id": config_id})
        return dict(data.get("contact_way") or {})

    def update_contact_way(self, config_id: str, **fields: Any) -> None:
        self.post("/cgi-bin/externalcontact/update_contact_way", {"config_id": config_id, **fields})

    def del_contact_way(self, config_id: str) -> None:
        self.post("/cgi-bin/externalcontact/del_contact_way", {"config_id": config_id})

    def iter_contact_ways(self, start_time: int | None = None, end_time: int | None = None,
                          limit: int = 1000) -> Iterator[str]:
        """The config_id of every API-created contact way (default: last 90 days, per WeCom)."""
        body: dict[str, Any] = {"limit": _check_range("limit", limit, 1, 1000)}
        if start_time is not None:
            body["start_time"] = int(start_time)
        if end_time is not None:
            body["end_time"] = int(end_time)
        return (row["config_id"] for row in
                self._items("/cgi-bin/externalcontact/list_contact_way", body, "contact_way"))

    # ------------------------------------------------------------------ §9.1 group-chat join ways

    def add_join_way(self, **fields: Any) -> dict[str, Any]:
        """Create a 「加入群聊」 way; {"config_id", "qr_code"}. WeCom answers the config_id only, so the QR
        code is read with get_join_way; when that read fails the way exists all the same, and the answer
        says so with `qr_code` None (the caller reads it again later) rather than raising, which would make
        the outbox create a second way."""
        config_id = str(self.post("/cgi-bin/externalcontact/groupchat/add_join_way", fields)["config_id"])
        try:
            qr_code = self.get_join_way(config_id).get("qr_code")
        except (WeComError, requests.RequestException) as exc:
            log.warning("wecom.join_way.qr_code_unread config_id=%s error=%s", config_id, exc)
            qr_code = None
        return {"config_id": config_id, "qr_code": qr_code}

    def get_join_way(self, config_id: str) -> dict[str, Any]:
        data = self.post("/cgi-bin/externalcontact/groupchat/get_join_way", {"config_id": config_id})
        return dict(data.get("join_way") or {})

    def update_join_way(self, config_id: str, **fields: Any) -> None:
        """Overwrite the way (WeCom wants scene and chat_id_list every time)."""
        self.post("/cgi-bin/externalcontact/groupchat/update_join_way", {"config_id": config_id, **fields})

    def del_join_way(self, config_id: str) -> None:
        self.post("/cgi-bin/externalcontact/groupchat/del_join_way", {"config_id": config_id})


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached the server (so repeating it is always safe)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)
    return False


# ---------------------------------------------------------------- clients of the running app

_APP_CLIENTS_LOCK = threading.Lock()


def _app_client(name: str, secret_setting: str) -> WeComClient:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = f"scrm.wecom.{name}_client"
    with _APP_CLIENTS_LOCK:
        client = app.extensions.get(key)
        if client is None:
            conf = settings()
            client = WeComClient(conf.WECOM_CORP_ID, getattr(conf, secret_setting), api_base=conf.WECOM_API_BASE,
                                 timeout=conf.WECOM_TIMEOUT, token_store=DatabaseTokenStore(db.engine))
            app.extensions[key] = client
    return client


def contact_client() -> WeComClient:
    """The running app's client for customer-contact APIs (WECOM_CONTACT_SECRET), one per app."""
    return _app_client("contact", "WECOM_CONTACT_SECRET")


def agent_client() -> WeComClient:
    """The running app's client for the self-built app (WECOM_AGENT_SECRET): app messages, agent ticket."""
    return _app_client("agent", "WECOM_AGENT_SECRET")
