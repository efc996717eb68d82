"""Callback crypto (WXBizMsgCrypt) on top of wechatpy's `WeChatCrypto`, hardened.

wechatpy computes the signature and runs AES-256-CBC; this module adds what it lacks
(wecom-api.md §2.3):

- the signature is compared in constant time (`hmac.compare_digest`; wechatpy uses `!=`);
- the PKCS#7 padding is checked by the 32-byte rule (pad 1..32, every pad byte equal), and the
  length prefix must fit, so a tampered ciphertext is a `DecryptError`, never an IndexError;
- the receive id must be our corp id (`WrongCorp`);
- XML, outer envelope and inner plaintext alike, is parsed with entities disabled and any
  DOCTYPE refused (`MalformedXML`): no entity expansion, no billion laughs.

Beside the verifier sits the signing helper the tests and tools use: `encrypt_envelope`
builds exactly what WeCom would POST, and `encrypt_echostr` what it would send as a URL check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
import uuid
from typing import Any
from xml.parsers import expat

from wechatpy.crypto.base import WeChatCipher
from wechatpy.work.crypto import PrpCrypto, WeChatCrypto

__all__ = [
    "BadSignature",
    "CallbackCrypto",
    "CallbackError",
    "DecryptError",
    "MalformedXML",
    "WrongCorp",
    "parse_xml",
]

BLOCK = 32  # WeCom's PKCS#7 block size (not AES's 16)
MAX_XML_DEPTH = 8  # WeCom's events nest three levels (<xml><MemChangeList><Item>); anything deeper is not WeCom


class CallbackError(Exception):
    """A callback that must be refused; the subclass says why."""


class BadSignature(CallbackError):
    """msg_signature does not match sha1(sorted([token, timestamp, nonce, encrypted]))."""


class DecryptError(CallbackError):
    """The encrypted text is not valid base64/AES/padding/layout for our EncodingAESKey."""


class WrongCorp(CallbackError):
    """The decrypted receive id is not our corp id (meant for another corp or suite)."""


class MalformedXML(CallbackError):
    """The outer envelope or the inner plaintext is not the XML we accept."""


class _TreeBuilder:
    """Builds xmltodict's shape straight from expat's events: an element with children is a dict
    (a repeated child a list), one with only text its stripped text, an empty one None. Attributes
    are dropped (WeCom sends none). Refuses any DOCTYPE or entity declaration and nesting deeper
    than MAX_XML_DEPTH while it parses, so a hostile document costs no more than its size."""

    __slots__ = ("stack", "texts", "root")

    def __init__(self) -> None:
        self.stack: list[tuple[str, dict[str, Any] | None]] = []
        self.texts: list[list[str]] = []
        self.root: dict[str, Any] | None = None

    def start(self, name: str, _attrs: Any) -> None:
        if len(self.stack) > MAX_XML_DEPTH:
            raise ValueError(f"xml nested more than {MAX_XML_DEPTH} levels")
        if self.stack:
            parent_name, parent = self.stack[-1]
            if parent is None:
                self.stack[-1] = (parent_name, {})
        self.stack.append((name, None))
        self.texts.append([])

    def end(self, _name: str) -> None:
        name, children = self.stack.pop()
        text = "".join(self.texts.pop()).strip()
        value: Any = children if children is not None else (text or None)
        if not self.stack:
            self.root = {name: value}
            return
        parent = self.stack[-1][1]
        assert parent is not None
        if name in parent:
            known = parent[name]
            if isinstance(known, list):
                known.append(value)
            else:
                parent[name] = [known, value]
        else:
            parent[name] = value

    def data(self, text: str) -> None:
        if self.texts:
            self.texts[-1].append(text)


def _refuse_declaration(*_args: Any) -> None:
    raise ValueError("DOCTYPE and entity declarations are not allowed")


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """Parse a WeCom `<xml>…</xml>` document into a dict of its children, safely.

    Raises `MalformedXML` for anything else: syntax errors, a DOCTYPE or entity declaration, an
    entity reference, nesting deeper than MAX_XML_DEPTH, a different root element, or a root with
    no children. (expat directly: the callback path parses two documents per request, and
    xmltodict's generality cost four times as much.)
    """
    builder = _TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(text, True)
    except (expat.ExpatError, ValueError) as exc:
        raise MalformedXML(f"not well-formed xml ({exc})") from None
    root = (builder.root or {}).get("xml")
    if not isinstance(root, dict):
        raise MalformedXML("the root element must be <xml> with children")
    return _normalize(root)


def _normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Give list-valued fields one shape: MemChangeList is always a list of ids.

    WeCom sends it as `<Item>` children (since ~2023) or, in the older form, a comma list.
    """
    if "MemChangeList" in data:
        value = data["MemChangeList"]
        if isinstance(value, dict):
            items = value.get("Item")
            items = items if isinstance(items, list) else [items]
            data["MemChangeList"] = [str(i) for i in items if i]
        elif isinstance(value, str):
            data["MemChangeList"] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            data["MemChangeList"] = []
    return data


class _PrpCrypto(PrpCrypto):
    """wechatpy's AES layer, with a random prefix that a test can fix (Vector B3)."""

    def __init__(self, key: bytes, random_prefix: bytes | None = None) -> None:
        super().__init__(key)
        self._prefix = random_prefix

    def get_random_string(self) -> Any:
        return self._prefix if self._prefix is not None else super().get_random_string()


class CallbackCrypto(WeChatCrypto):
    """Verify, decrypt and parse WeCom callbacks for one corp (self-built app: receive id = corp id)."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 base64 characters (a 32-byte AES key)")
        super().__init__(token, encoding_aes_key, corp_id)

    # ------------------------------------------------------------ verifying

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """sha1 of the four strings sorted and joined, lowercase hex (wecom-api.md §2.3)."""
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypted])).encode()).hexdigest()

    def _check(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode("utf-8", "replace")):
            raise BadSignature("msg_signature does not match")

    def _open(self, encrypted: str) -> str:
        """Decrypt one `msg_encrypt` and return the message, after every layout check."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptError("the encrypted text is not base64") from None
        if not raw or len(raw) % BLOCK:
            raise DecryptError(f"the ciphertext is not a whole number of {BLOCK}-byte blocks")
        plain = WeChatCipher(self.key).decrypt(raw)
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise DecryptError("bad padding")
        content = plain[16:-pad]  # drop the 16-byte random prefix and the padding
        if len(content) < 4:
            raise DecryptError("decrypted text too short")
        (length,) = struct.unpack(">I", content[:4])
        if 4 + length > len(content):
            raise DecryptError("message length out of range")
        try:
            message = content[4:4 + length].decode("utf-8")
            receive_id = content[4 + length:].decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("decrypted text is not utf-8") from None
        if receive_id != self.corp_id:
            raise WrongCorp(f"receive id {receive_id[:64]!r} is not this corp")
        return message

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The URL check (GET): verify and return the plaintext echo to answer with."""
        self._check(msg_signature, timestamp, nonce, echostr)
        return self._open(echostr)

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str,
                body: str | bytes) -> tuple[str, dict[str, Any]]:
        """An event (POST): parse the envelope, verify, decrypt, parse the plaintext.

        Returns the plaintext XML exactly as decrypted and its parsed fields.
        """
        envelope = parse_xml(body)
        encrypted = envelope.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted.strip():
            raise MalformedXML("no <Encrypt> in the envelope")
        encrypted = encrypted.strip()
        self._check(msg_signature, timestamp, nonce, encrypted)
        plaintext = self._open(encrypted)
        return plaintext, parse_xml(plaintext)

    # wechatpy's own entry points, routed through the hardened checks.
    def check_signature(self, signature: str, timestamp: str, nonce: str, echo_str: str) -> str:
        return self.verify_url(signature, timestamp, nonce, echo_str)

    def decrypt_message(self, msg: Any, signature: str, timestamp: str, nonce: str) -> str:
        return self.decrypt(signature, timestamp, nonce, msg)[0]

    # ------------------------------------------------------------ signing (tests, tools)

    def seal(self, plaintext: str, random_prefix: bytes | None = None) -> str:
        """Encrypt one message the way WeCom does (`msg_encrypt`)."""
        return _PrpCrypto(self.key, random_prefix).encrypt(plaintext, self.corp_id).decode()

    def encrypt_envelope(self, plaintext_xml: str, timestamp: str | int | None = None,
                         nonce: str | None = None, *, random_prefix: bytes | None = None,
                         agent_id: str = "") -> tuple[dict[str, str], bytes]:
        """What WeCom would POST for `plaintext_xml`: the query parameters and the XML body."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or uuid.uuid4().hex[:10]
        encrypted = self.seal(plaintext_xml, random_prefix)
        query = {"msg_signature": self.signature(ts, nonce, encrypted), "timestamp": ts, "nonce": nonce}
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<AgentID><![CDATA[{agent_id}]]></AgentID>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        return query, body.encode("utf-8")

    def encrypt_echostr(self, echo: str, timestamp: str | int | None = None,
                        nonce: str | None = None) -> dict[str, str]:
        """What WeCom would send as the URL check for `echo`: all four query parameters."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or uuid.uuid4().hex[:10]
        encrypted = self.seal(echo)
        return {"msg_signature": self.signature(ts, nonce, encrypted), "timestamp": ts,
                "nonce": nonce, "echostr": encrypted}
