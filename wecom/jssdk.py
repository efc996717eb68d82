"""JS-SDK signatures for `wx.config` / `ww.register` (corp jsapi_ticket) and `wx.agentConfig` (agent ticket).

The algorithm (wecom-api.md §8.2): sha1 over ``jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL`` with
raw values, the URL being the page URL without its ``#fragment``. The same algorithm serves both
tickets; only the ticket differs. wechatpy's signer does the hashing (it sorts the four
``key=value`` pieces, which gives exactly the documented key order).
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import asdict, dataclass
from typing import Callable

from wechatpy.utils import WeChatSigner

_NONCE_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class JsSignature:
    """What `ww.register`'s getConfigSignature / getAgentConfigSignature callbacks return."""

    timestamp: int
    nonceStr: str  # noqa: N815  (the JS-SDK's own field name)
    signature: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def strip_fragment(url: str) -> str:
    """The URL to sign: everything before the first '#'."""
    return url.split("#", 1)[0]


def sign(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """The hex SHA-1 signature of one (ticket, noncestr, timestamp, url)."""
    signer = WeChatSigner(delimiter=b"&")
    signer.add_data(f"jsapi_ticket={ticket}", f"noncestr={noncestr}", f"timestamp={timestamp}",
                    f"url={strip_fragment(url)}")
    return signer.signature


def make_nonce(length: int = 16) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def signature_for(ticket: str, url: str, *, now: Callable[[], float] = time.time,
                  nonce: str | None = None) -> JsSignature:
    """A fresh signature for a page URL (fragment stripped), with a new nonce and the current time."""
    timestamp = int(now())
    noncestr = nonce or make_nonce()
    return JsSignature(timestamp=timestamp, nonceStr=noncestr, signature=sign(ticket, noncestr, timestamp, url))
