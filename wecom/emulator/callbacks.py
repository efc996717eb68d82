"""Encrypted callback delivery, in order, with WeCom's retry rules (wecom-api.md §2.2, §3).

One background thread drains an ordered queue. Each payload is encrypted once (so every retry
carries the SAME body) and POSTed to the callback URL; anything but HTTP 200 within the timeout
is a failure, retried up to 3 more times after a short, configurable backoff.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
from typing import Any, Callable, NamedTuple
from xml.sax.saxutils import escape

import requests
import xmltodict
from wechatpy.work.crypto import WeChatCrypto

log = logging.getLogger("scrm.wecom.emulator")

RETRIES = 3


class Delivery(NamedTuple):
    payload: str  # the decrypted XML the project should see
    attempts: int
    final_status: int | str  # HTTP status of the last attempt, "timeout", "error", or "no-url"


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def event_xml(corp_id: str, create_time: int, event: str, change_type: str,
              fields: list[tuple[str, Any]]) -> str:
    """A customer-contact event as WeCom's self-built apps receive it (decrypted)."""
    parts = [f"<ToUserName>{_cdata(corp_id)}</ToUserName>", f"<FromUserName>{_cdata('sys')}</FromUserName>",
             f"<CreateTime>{create_time}</CreateTime>", f"<MsgType>{_cdata('event')}</MsgType>",
             f"<Event>{_cdata(event)}</Event>", f"<ChangeType>{_cdata(change_type)}</ChangeType>"]
    for name, value in fields:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items = "".join(f"<Item>{escape(str(v))}</Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}>{_cdata(str(value))}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


class CallbackDispatcher:
    """Ordered, retrying delivery of encrypted callbacks to a URL read at send time."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: str,
                 url_getter: Callable[[], str | None], clock_now: Callable[[], int],
                 timeout: float = 5.0, backoff: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        self.crypto = WeChatCrypto(token, encoding_aes_key, corp_id)
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.url_getter = url_getter
        self.clock_now = clock_now
        self.timeout = timeout
        self.backoff = backoff
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._session = requests.Session()

    # ------------------------------------------------------------ public

    def enqueue(self, plaintext: str) -> None:
        with self._cond:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="wecom-emulator-callbacks", daemon=True)
                self._thread.start()
        self._queue.put(plaintext)

    def wait_idle(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=self.timeout * 2 + 5)
        self._session.close()

    def envelope(self, plaintext: str) -> tuple[dict[str, str], str]:
        """Encrypt once: the query (msg_signature, timestamp, nonce) and the XML body to POST."""
        # The query's timestamp is when the delivery is signed, on the wall clock (the app refuses one far
        # from its own clock); the event's CreateTime inside the XML is the emulator's clock.
        timestamp = str(int(time.time()))
        nonce = str(secrets.randbelow(10**10))
        reply = xmltodict.parse(self.crypto.encrypt_message(plaintext, nonce, timestamp))["xml"]
        encrypt = reply["Encrypt"]
        signature = hashlib.sha1("".join(sorted([self.crypto.token, timestamp, nonce, encrypt])).encode()).hexdigest()
        body = (f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName>"
                f"<AgentID>{_cdata(self.agent_id)}</AgentID><Encrypt>{_cdata(encrypt)}</Encrypt></xml>")
        return {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}, body

    # ------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.deliveries.append(self._deliver(item))
            except Exception:  # never let one payload kill the queue
                log.exception("wecom.emulator.callback-crash")
                self.deliveries.append(Delivery(item, 0, "error"))
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, plaintext: str) -> Delivery:
        url = self.url_getter()
        if not url:
            log.info("wecom.emulator.callback-no-url")
            return Delivery(plaintext, 0, "no-url")
        query, body = self.envelope(plaintext)
        status: int | str = "error"
        attempts = 0
        for attempt in range(RETRIES + 1):
            if attempt and not self._stopping.is_set():
                pause = self.backoff[min(attempt - 1, len(self.backoff) - 1)] if self.backoff else 0
                self._stopping.wait(pause)
            if self._stopping.is_set() and attempt:
                break
            attempts += 1
            try:
                resp = self._session.post(url, params=query, data=body.encode(),
                                          headers={"Content-Type": "text/xml"}, timeout=self.timeout)
                status = resp.status_code
            except requests.Timeout:
                status = "timeout"
            except requests.RequestException as exc:
                log.info("wecom.emulator.callback-error %s", exc)
                status = "error"
            if status == 200:
                break
            log.info("wecom.emulator.callback-retry attempt=%s status=%s", attempts, status)
        return Delivery(plaintext, attempts, status)
