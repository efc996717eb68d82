"""The `Emulator`: a threaded WSGI server answering WeCom's API, the OAuth pages, and a control API
under `/emulator/`, over an in-memory `State`, with faults on demand and encrypted callbacks."""

from __future__ import annotations

import io
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass
from html import escape
from typing import Any, Iterable
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import segno
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import api
from .actions import ActionError, Actions
from .api import ApiError, Ctx
from .callbacks import CallbackDispatcher, Delivery, event_xml
from .clock import Clock
from .seed import seed_state
from .state import State

log = logging.getLogger("scrm.wecom.emulator")

OAUTH_CODE_TTL = 300
OAUTH_PATHS = ("/connect/oauth2/authorize", "/wwlogin/sso/login", "/wwopen/sso/qrConnect")
MAX_BODY = 25 << 20


class Tokens:
    """Access tokens per app (same token until expiry on the emulator clock) and JS-SDK tickets."""

    def __init__(self, ttl: int = api.TOKEN_TTL) -> None:
        self.ttl = ttl
        self._current: dict[str, tuple[str, int]] = {}
        self._info: dict[str, list[Any]] = {}  # token -> [app, expires_at, revoked]
        self._tickets: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def issue(self, app: str, now: int) -> tuple[str, int]:
        with self._lock:
            current = self._current.get(app)
            if current and current[1] > now and not self._info[current[0]][2]:
                return current
            token = secrets.token_urlsafe(48)
            self._current[app] = (token, now + self.ttl)
            self._info[token] = [app, now + self.ttl, False]
            return self._current[app]

    def check(self, token: str | None, now: int) -> str:
        """The app the token belongs to, or ApiError 41001 / 40014 / 42001."""
        if not token:
            raise ApiError(41001)
        with self._lock:
            info = self._info.get(token)
        if info is None:
            raise ApiError(40014)
        if info[2] or info[1] <= now:
            raise ApiError(42001)
        return info[0]

    def expire_all(self) -> None:
        with self._lock:
            for info in self._info.values():
                info[2] = True
            self._current.clear()

    def ticket(self, kind: str, now: int) -> tuple[str, int]:
        with self._lock:
            current = self._tickets.get(kind)
            if current is None or current[1] <= now:
                current = (secrets.token_urlsafe(64), now + self.ttl)
                self._tickets[kind] = current
            return current


@dataclass
class Fault:
    path: str | None
    errcode: int | None
    http_status: int | None
    delay: float | None
    remaining: int
    probability: float = 1.0  # each call fails with this chance (the fault lasts `times` failures)
    after: bool = False  # the call takes effect, then the answer is the fault (an answer lost on the way)


class Faults:
    """Misbehaviour on demand: the next `times` calls to `path` fail or are slow (or, with
    `probability`, that share of them until `times` have failed; with `after`, the call still takes
    effect and only its answer is lost)."""

    def __init__(self) -> None:
        self._items: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, path: str | None = None, errcode: int | None = None, http_status: int | None = None,
            delay: float | None = None, times: int = 1, probability: float = 1.0, after: bool = False) -> None:
        if errcode is None and http_status is None and delay is None:
            raise ValueError("a fault needs errcode, http_status or delay")
        if not 0 < float(probability) <= 1:
            raise ValueError("probability must be in (0, 1]")
        with self._lock:
            self._items.append(Fault(path, errcode, http_status, delay, int(times), float(probability), bool(after)))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._items:
                if fault.path == path or (fault.path is None and path != "/cgi-bin/gettoken"):
                    if fault.probability < 1 and random.random() >= fault.probability:
                        continue
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._items.remove(fault)
                    return fault
        return None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("wecom.emulator.request %s %s", self.requestline, code)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, content_type="application/json; charset=utf-8")


def _error_body(code: int, msg: str, ip: str) -> dict[str, Any]:
    hint = f"[{int(time.time())}_{secrets.randbelow(100)}_{secrets.token_hex(16)}]"
    return {"errcode": code, "errmsg": f"{msg}, hint: {hint}, from ip: {ip}, "
                                       f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"}


class Emulator:
    """A local stand-in for WeCom's server API (see the package docstring for the public surface)."""

    def __init__(self, corp_id: str, contact_secret: str, agent_id: str, agent_secret: str, token: str,
                 encoding_aes_key: str, callback_url: str | None = None, seed: str | int | None = None,
                 *, callback_timeout: float = 5.0, callback_backoff: Iterable[float] = (0.5, 1.0, 2.0)) -> None:
        self.corp_id = corp_id
        self.contact_secret = contact_secret
        self.agent_id = str(agent_id)
        self.agent_secret = agent_secret
        self.callback_url = callback_url
        self.clock = Clock()
        self.state = State(corp_id, self.clock)
        self.tokens = Tokens()
        self.faults = Faults()
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self._calls_lock = threading.Lock()
        self.externalcontact_apps: set[str] = {"contact", "agent"}
        self.corp_tag_limit = 3000
        self.chat_transfers_today: dict[tuple[str, int], int] = {}
        self.dispatcher = CallbackDispatcher(token, encoding_aes_key, corp_id, self.agent_id,
                                             lambda: self.callback_url, self.clock.now,
                                             timeout=callback_timeout, backoff=tuple(callback_backoff))
        self.state.emit = self._emit
        self.clock.on_advance(self.state.tick)
        self.act = Actions(self)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        started = time.monotonic()
        seed_state(self.state, seed)
        self.seed_seconds = time.monotonic() - started

    # ------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "Emulator":
        """Serve in a background thread (threaded WSGI server); returns self."""
        self._server = make_server(host, port, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="wecom-emulator", daemon=True)
        self._thread.start()
        log.info("wecom.emulator.started %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
        self.dispatcher.stop()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ controls

    @property
    def deliveries(self) -> list[Delivery]:
        return self.dispatcher.deliveries

    def wait_idle(self, timeout: float = 10) -> bool:
        """True once every queued callback was delivered (or given up)."""
        return self.dispatcher.wait_idle(timeout)

    def expire_tokens(self) -> None:
        """Every issued access token becomes invalid now (next call -> 42001)."""
        self.tokens.expire_all()

    def deny_externalcontact(self, app: str, denied: bool = True) -> None:
        """Make `externalcontact/*` answer 48002 for the "contact" or "agent" app's tokens."""
        (self.externalcontact_apps.discard if denied else self.externalcontact_apps.add)(app)

    def call_count(self, path: str) -> int:
        with self._calls_lock:
            return sum(1 for c in self.calls if c[1] == path)

    def oauth_code(self, userid: str) -> str:
        """A code as WeCom's OAuth redirect carries it: single use, valid 5 minutes."""
        with self.state.lock:
            member = self.state.staff.get(userid)
            if member is None or member.resigned:
                raise ActionError(f"unknown or resigned staff member {userid!r}")
            code = secrets.token_urlsafe(32)
            self.state.oauth_codes[code] = (userid, self.clock.now() + OAUTH_CODE_TTL)
            return code

    def app_for_secret(self, secret: str) -> str | None:
        if secrets.compare_digest(secret.encode(), self.contact_secret.encode()):
            return "contact"
        if secrets.compare_digest(secret.encode(), self.agent_secret.encode()):
            return "agent"
        return None

    def _emit(self, event: str, change_type: str, fields: list[tuple[str, Any]]) -> None:
        self.dispatcher.enqueue(event_xml(self.corp_id, self.clock.now(), event, change_type, fields))

    # ------------------------------------------------------------ WSGI

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        path = request.path
        try:
            if path.startswith("/cgi-bin/"):
                response = self._api(request)
            elif path.startswith("/emulator/"):
                response = self._control(request)
            elif path in OAUTH_PATHS:
                response = self._oauth(request)
            else:
                response = Response("not found", status=404)
        finally:
            request.close()  # uploaded files are spooled to temporary files
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        path = request.path
        ip = request.remote_addr or "127.0.0.1"
        query = request.args.to_dict()
        body: Any = None
        malformed = False
        if request.method == "POST" and not (request.mimetype or "").startswith("multipart/"):
            raw = request.get_data(cache=True)
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    malformed = True
        with self._calls_lock:
            self.calls.append((request.method, path, query, body))
        fault = self.faults.take(path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            failed = self._fault_answer(fault, ip)
            if failed is not None and not fault.after:
                return failed
            if failed is not None:  # the call takes effect; its answer is lost
                self._answer(request, path, query, body, malformed, ip)
                return failed
        return self._answer(request, path, query, body, malformed, ip)

    @staticmethod
    def _fault_answer(fault: Fault, ip: str) -> Response | None:
        if fault.http_status:
            return Response(f"<html><body><h1>{fault.http_status}</h1>emulated fault</body></html>",
                            status=fault.http_status, content_type="text/html")
        if fault.errcode is not None:
            return _json(_error_body(fault.errcode, api.ERRMSG.get(fault.errcode, "error"), ip))
        return None

    def _answer(self, request: Request, path: str, query: dict[str, str], body: Any, malformed: bool,
                ip: str) -> Response:
        entry = api.ROUTES.get(path)
        if entry is None:
            return _json(_error_body(404, f"api not found: {path}", ip), status=404)
        method, auth, handler = entry
        try:
            if request.method != method:
                raise ApiError(40058, f"invalid Request Parameter: http method {request.method} not allowed, "
                                      f"use {method}")
            now = self.clock.now()
            app = self.tokens.check(query.get("access_token"), now) if auth else None
            if auth == "externalcontact" and app not in self.externalcontact_apps:
                raise ApiError(48002)
            if malformed:
                raise ApiError(40058, "Warning: wrong json format. ")
            if body is not None and not isinstance(body, dict):
                raise ApiError(40058, "Warning: wrong json format. ")
            self.state.tick()
            ctx = Ctx(self, query, body or {}, app, request)
            with self.state.lock:
                result = handler(ctx)
        except ApiError as exc:
            return _json(_error_body(exc.errcode, exc.errmsg, ip))
        return _json({"errcode": 0, "errmsg": "ok", **result})

    # ------------------------------------------------------------ control API

    def _control(self, request: Request) -> Response:
        path, method = request.path, request.method
        try:
            body = request.get_json(silent=True) or {}
            if path.startswith("/emulator/act/") and method == "POST":
                name = path.rsplit("/", 1)[-1]
                if name not in Actions.names():
                    return _json({"error": f"unknown action {name!r}"}, 404)
                result = getattr(self.act, name)(**body)
                return _json({"result": list(result) if isinstance(result, tuple) else result})
            if path == "/emulator/faults" and method == "POST":
                self.faults.add(**body)
                return _json({"ok": True})
            if path == "/emulator/faults" and method == "DELETE":
                self.faults.clear()
                return _json({"ok": True})
            if path == "/emulator/clock/advance" and method == "POST":
                return _json({"now": self.clock.advance(float(body.get("seconds", 0)))})
            if path == "/emulator/expire-tokens" and method == "POST":
                self.expire_tokens()
                return _json({"ok": True})
            if path.startswith("/emulator/qr/") and path.endswith(".png") and method == "GET":
                return self._qr_png(path[len("/emulator/qr/"):-len(".png")])
            if path == "/emulator/summary" and method == "GET":
                return _json(self.state.summary())
            if path == "/emulator/calls" and method == "GET":
                counts: dict[str, int] = {}
                with self._calls_lock:
                    for call in self.calls:
                        counts[call[1]] = counts.get(call[1], 0) + 1
                wanted = request.args.get("path")
                return _json({wanted: counts.get(wanted, 0)} if wanted else counts)
            if path == "/emulator/callback-url" and method == "PUT":
                self.callback_url = body.get("url") or None
                return _json({"url": self.callback_url})
            if path == "/emulator/oauth-code" and method == "POST":
                return _json({"code": self.oauth_code(str(body.get("userid")))})
            if path == "/emulator/wait-idle" and method == "POST":
                return _json({"idle": self.wait_idle(float(body.get("timeout", 10)))})
            if path == "/emulator/welcome-messages" and method == "GET":
                with self.state.lock:
                    sent = list(self.state.welcome_messages)
                    used = sum(1 for entry in self.state.welcome_codes.values() if entry["used"])
                return _json({"count": len(sent), "codes_used": used,
                              "customers": sorted({m["external_userid"] for m in sent})})
            if path == "/emulator/deliveries" and method == "GET":
                return _json([d._asdict() for d in self.deliveries])
        except (ActionError, TypeError, ValueError, KeyError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"error": f"no control endpoint {method} {path}"}, 404)

    def _qr_png(self, config_id: str) -> Response:
        """The QR code image of a contact or join way (WeCom serves it from its CDN; the emulator draws it)."""
        with self.state.lock:
            join = config_id in self.state.join_ways
            known = join or config_id in self.state.contact_ways
        if not known:
            return _json({"error": f"no contact or join way {config_id!r}"}, 404)
        out = io.BytesIO()
        target = f"https://work.weixin.qq.com/{'gm' if join else 'ca'}/{config_id}"  # what scanning would open
        segno.make(target, error="m").save(out, kind="png", scale=6, border=2)
        return Response(out.getvalue(), mimetype="image/png", headers={"Cache-Control": "max-age=3600"})

    # ------------------------------------------------------------ OAuth / web login pages

    def _oauth(self, request: Request) -> Response:
        args = request.args
        redirect_uri, state = args.get("redirect_uri", ""), args.get("state", "")
        if args.get("appid") != self.corp_id:
            return Response("appid 参数错误", status=400, content_type="text/plain; charset=utf-8")
        if not redirect_uri.startswith(("http://", "https://")):
            return Response("redirect_uri 参数错误", status=400, content_type="text/plain; charset=utf-8")
        if len(state) > 128:
            return Response("state 参数错误", status=400, content_type="text/plain; charset=utf-8")
        if args.get("refuse"):
            return Response(status=302, headers={"Location": _with_query(redirect_uri, {"state": state})})
        userid = args.get("userid")
        if userid:
            try:
                code = self.oauth_code(userid)
            except ActionError as exc:
                return Response(str(exc), status=400, content_type="text/plain; charset=utf-8")
            return Response(status=302, headers={"Location": _with_query(redirect_uri, {"code": code, "state": state})})
        links = []
        for member in list(self.state.staff.values()):
            if member.resigned:
                continue
            href = request.path + "?" + urlencode({**args.to_dict(), "userid": member.userid})
            links.append(f'<li><a href="{escape(href)}">{escape(member.name)}（{escape(member.userid)}）</a></li>')
        page = ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>企业微信登录（模拟）</title>"
                "</head><body><h1>选择登录成员</h1><p>本页面由本地企业微信模拟器提供。</p><ul>"
                + "".join(links) + "</ul></body></html>")
        return Response(page, content_type="text/html; charset=utf-8")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
