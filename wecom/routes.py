"""The callback endpoint `/wecom/callback`: WeCom's URL check (GET) and event delivery (POST).

A row of guard clauses, each refusing with its own stable log key and status, then one write to
the inbox, then `success`. Nothing slow happens before the answer (wecom-api.md §2.2: WeCom
waits 5 s and retries on anything but 200); the worker applies the event later.

Bad input never gets a 500, because a 500 makes WeCom retry what will never succeed.

These URLs are called by WeCom's servers: they need no login, and they must stay exempt from any
CSRF protection added later (e.g. `csrf.exempt(bp)` with Flask-WTF); the signature is their guard.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from core.settings import settings

from .crypto import BadSignature, CallbackCrypto, CallbackError, DecryptError, MalformedXML, WrongCorp
from .service import store_event

log = logging.getLogger("scrm.wecom")

bp = Blueprint("wecom_callback", __name__)

CRYPTO_KEY = "scrm.wecom.callback_crypto"

# Each refusal: (status, log key, the short body that says what is wrong).
REFUSALS: dict[type[CallbackError], tuple[int, str, str]] = {
    BadSignature: (403, "wecom.callback.bad-signature", "bad signature"),
    DecryptError: (403, "wecom.callback.decrypt-failed", "cannot decrypt"),
    WrongCorp: (403, "wecom.callback.wrong-corp", "wrong receive id"),
    MalformedXML: (400, "wecom.callback.malformed", "malformed xml"),
}


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _refuse(status: int, key: str, body: str, detail: str = "") -> Response:
    log.warning("%s remote=%s %s", key, request.remote_addr, detail)
    return _text(body, status)


def callback_crypto() -> CallbackCrypto:
    """The app's callback crypto, built from settings once (and again only if they change)."""
    conf = settings()
    triple = (conf.WECOM_TOKEN, conf.WECOM_ENCODING_AES_KEY, conf.WECOM_CORP_ID)
    cached = current_app.extensions.get(CRYPTO_KEY)
    if cached is None or cached[0] != triple:
        cached = (triple, CallbackCrypto(*triple))
        current_app.extensions[CRYPTO_KEY] = cached
    return cached[1]


def _missing(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not request.args.get(n)]


def _stale(timestamp: str) -> Response | None:
    """Refuse a `timestamp` that is not a number, or is further from now than SCRM_CALLBACK_MAX_SKEW."""
    skew = settings().SCRM_CALLBACK_MAX_SKEW
    try:
        sent = int(timestamp)
    except ValueError:
        return _refuse(400, "wecom.callback.bad-timestamp", "timestamp is not a number", detail=timestamp[:32])
    if skew and abs(time.time() - sent) > skew:
        return _refuse(403, "wecom.callback.stale-timestamp", "timestamp outside the accepted window",
                       detail=f"timestamp={sent}")
    return None


def _crypto_or_none() -> CallbackCrypto | None:
    try:
        return callback_crypto()
    except ValueError as exc:  # settings are checked at start; this is a demo without keys
        log.error("wecom.callback.not-configured %s", exc)
        return None


@bp.get("/wecom/callback")
def verify_url() -> Response:
    """URL check: answer the decrypted echostr as plain text, no newline."""
    missing = _missing(("msg_signature", "timestamp", "nonce", "echostr"))
    if missing:
        return _refuse(400, "wecom.callback.missing-params",
                       "missing query parameters: " + ", ".join(missing))
    crypto = _crypto_or_none()
    if crypto is None:
        return _text("callback not configured", 503)
    args = request.args
    stale = _stale(args["timestamp"])
    if stale is not None:
        return stale
    try:
        echo = crypto.verify_url(args["msg_signature"], args["timestamp"], args["nonce"], args["echostr"])
    except CallbackError as exc:
        return _refuse(*REFUSALS[type(exc)], detail=str(exc))
    log.info("wecom.callback.url-verified")
    return _text(echo)


@bp.post("/wecom/callback")
def receive_event() -> Response:
    """Event delivery: guard clauses, store in the inbox, answer `success`."""
    missing = _missing(("msg_signature", "timestamp", "nonce"))
    if missing:
        return _refuse(400, "wecom.callback.missing-params",
                       "missing query parameters: " + ", ".join(missing))
    stale = _stale(request.args["timestamp"])
    if stale is not None:
        return stale
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        return _refuse(413, "wecom.callback.too-large", "body too large",
                       detail=f"length={request.content_length}")
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _refuse(413, "wecom.callback.too-large", "body too large")
    # A chunked body (no Content-Length) is cut at the limit by werkzeug without an error: a body
    # that fills the limit is taken as one that went past it, never parsed truncated.
    if limit is not None and request.content_length is None and len(body) >= limit:
        return _refuse(413, "wecom.callback.too-large", "body too large", detail="chunked")
    crypto = _crypto_or_none()
    if crypto is None:
        return _text("callback not configured", 503)
    args = request.args
    try:
        plaintext, data = crypto.decrypt(args["msg_signature"], args["timestamp"], args["nonce"], body)
    except CallbackError as exc:
        return _refuse(*REFUSALS[type(exc)], detail=str(exc))
    store_event(crypto.corp_id, plaintext, data)
    return _text("success")
