"""The callback endpoint `/wecom/callback`: WeCom's URL check (GET) and event delivery (POST).

A row of guard clauses, each refusing with its own stable log key and status, then one write to
the inbox, then `success`. Nothing slow happens before the answer (wecom-api.md §2.2: WeCom
waits 5 s and retries on anything but 200); the worker applies the event later.

The endpoint is a small WSGI application in front of Flask (`install` wraps `app.wsgi_app`), not a
Flask view: it is the one URL that takes bursts of a thousand requests a second, and Flask's request
machinery (request and session objects, URL matching, hooks, response object) costs more than
verifying, decrypting and storing a callback. Every other path goes to Flask untouched. Tests and
the Flask test client reach it the same way, through `app.wsgi_app`.

Bad input never gets a 500, because a 500 makes WeCom retry what will never succeed; a database
that cannot take the write answers 503, so that WeCom retries what will succeed later.

These URLs are called by WeCom's servers: they need no login and no CSRF token (they never reach
Flask's hooks); the signature is their guard.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from flask import Flask, current_app

from core.settings import settings

from .crypto import BadSignature, CallbackCrypto, CallbackError, DecryptError, MalformedXML, WrongCorp
from .service import store_event

log = logging.getLogger("scrm.wecom")

PATH = "/wecom/callback"
CRYPTO_KEY = "scrm.wecom.callback_crypto"

# Each refusal: (status, log key, the short body that says what is wrong).
REFUSALS: dict[type[CallbackError], tuple[int, str, str]] = {
    BadSignature: (403, "wecom.callback.bad-signature", "bad signature"),
    DecryptError: (403, "wecom.callback.decrypt-failed", "cannot decrypt"),
    WrongCorp: (403, "wecom.callback.wrong-corp", "wrong receive id"),
    MalformedXML: (400, "wecom.callback.malformed", "malformed xml"),
}
STATUS_LINES = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden", 405: "405 Method Not Allowed",
                413: "413 Payload Too Large", 503: "503 Service Unavailable"}

StartResponse = Callable[..., Any]
Answer = tuple[int, str]


class Refused(Exception):
    """A guard clause said no: the status and body of the answer (already logged)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _refuse(environ: dict[str, Any], status: int, key: str, body: str, detail: str = "") -> Refused:
    log.warning("%s remote=%s %s", key, environ.get("REMOTE_ADDR"), detail)
    return Refused(status, body)


def callback_crypto() -> CallbackCrypto:
    """The app's callback crypto, built from settings once (and again only if they change)."""
    conf = settings()
    triple = (conf.WECOM_TOKEN, conf.WECOM_ENCODING_AES_KEY, conf.WECOM_CORP_ID)
    cached = current_app.extensions.get(CRYPTO_KEY)
    if cached is None or cached[0] != triple:
        cached = (triple, CallbackCrypto(*triple))
        current_app.extensions[CRYPTO_KEY] = cached
    return cached[1]


def _crypto(environ: dict[str, Any]) -> CallbackCrypto:
    try:
        return callback_crypto()
    except ValueError as exc:  # settings are checked at start; this is a demo without keys
        log.error("wecom.callback.not-configured %s", exc)
        raise Refused(503, "callback not configured") from None


def _query(environ: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The named query parameters (the first of each), refusing when one is missing or empty."""
    args: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        args.setdefault(name, value)
    missing = [n for n in names if not args.get(n)]
    if missing:
        raise _refuse(environ, 400, "wecom.callback.missing-params", "missing query parameters: " + ", ".join(missing))
    return args


def _check_timestamp(environ: dict[str, Any], timestamp: str) -> None:
    """Refuse a `timestamp` that is not a number, or is further from now than SCRM_CALLBACK_MAX_SKEW."""
    try:
        sent = int(timestamp)
    except ValueError:
        raise _refuse(environ, 400, "wecom.callback.bad-timestamp", "timestamp is not a number",
                      detail=timestamp[:32]) from None
    skew = settings().SCRM_CALLBACK_MAX_SKEW
    if skew and abs(time.time() - sent) > skew:
        raise _refuse(environ, 403, "wecom.callback.stale-timestamp", "timestamp outside the accepted window",
                      detail=f"timestamp={sent}")


def _body(environ: dict[str, Any]) -> bytes:
    """The request body, refusing one longer than SCRM_CALLBACK_MAX_BYTES (chunked ones included)."""
    limit = settings().SCRM_CALLBACK_MAX_BYTES or None
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise _refuse(environ, 400, "wecom.callback.bad-length", "bad Content-Length") from None
        if limit is not None and length > limit:
            raise _refuse(environ, 413, "wecom.callback.too-large", "body too large", detail=f"length={length}")
        return bytes(stream.read(length)) if length > 0 else b""
    chunked = environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked:
        return b""
    body = bytes(stream.read(limit + 1 if limit is not None else -1))
    if limit is not None and len(body) > limit:
        raise _refuse(environ, 413, "wecom.callback.too-large", "body too large", detail="chunked")
    return body


def _opened(environ: dict[str, Any], fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CallbackError as exc:
        raise _refuse(environ, *REFUSALS[type(exc)], detail=str(exc)) from None


def verify_url(environ: dict[str, Any]) -> Answer:
    """URL check: answer the decrypted echostr as plain text, no newline."""
    args = _query(environ, ("msg_signature", "timestamp", "nonce", "echostr"))
    crypto = _crypto(environ)
    _check_timestamp(environ, args["timestamp"])
    echo = _opened(environ, lambda: crypto.verify_url(args["msg_signature"], args["timestamp"], args["nonce"],
                                                      args["echostr"]))
    log.info("wecom.callback.url-verified")
    return 200, echo


def receive_event(environ: dict[str, Any]) -> Answer:
    """Event delivery: guard clauses, store in the inbox, answer `success`."""
    args = _query(environ, ("msg_signature", "timestamp", "nonce"))
    _check_timestamp(environ, args["timestamp"])
    body = _body(environ)
    crypto = _crypto(environ)
    plaintext, data = _opened(environ, lambda: crypto.decrypt(args["msg_signature"], args["timestamp"],
                                                              args["nonce"], body))
    try:
        store_event(crypto.corp_id, plaintext, data)
    except Exception:  # the database is down or refused the write: WeCom retries, nothing is lost
        log.exception("wecom.callback.store-failed remote=%s", environ.get("REMOTE_ADDR"))
        return 503, "temporarily unavailable, retry later"
    return 200, "success"


class CallbackEndpoint:
    """WSGI middleware: answers `/wecom/callback` itself and hands every other request to Flask."""

    def __init__(self, app: Flask, wrapped: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.wrapped = wrapped

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.wrapped(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        with self.app.app_context():
            try:
                if method == "POST":
                    status, text = receive_event(environ)
                elif method in ("GET", "HEAD"):
                    status, text = verify_url(environ)
                else:
                    status, text = 405, "method not allowed"
                    headers.append(("Allow", "GET, HEAD, POST"))
            except Refused as refused:
                status, text = refused.status, refused.body
        payload = text.encode("utf-8")
        headers.append(("Content-Length", str(len(payload))))
        start_response(STATUS_LINES[status], headers)
        return [b""] if method == "HEAD" else [payload]


def install(app: Flask) -> None:
    """Put the endpoint in front of the app's WSGI callable."""
    app.wsgi_app = CallbackEndpoint(app, app.wsgi_app)  # type: ignore[method-assign]
