"""An independent WXBizMsgCrypt (wecom-api.md §2.3/§2.5) on `cryptography`, to check the emulator."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def _cipher(aes_key: str) -> Cipher:
    key = base64.b64decode(aes_key + "=")
    assert len(key) == 32
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def decrypt(aes_key: str, encrypt: str) -> tuple[str, str]:
    """(msg, receiveid); the padding is PKCS#7 to 32-byte blocks."""
    dec = _cipher(aes_key).decryptor()
    plain = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20:20 + length].decode(), plain[20 + length:].decode()


def encrypt(aes_key: str, msg: str, receive_id: str, rand16: bytes | None = None) -> str:
    body = (rand16 or os.urandom(16)) + struct.pack(">I", len(msg.encode())) + msg.encode() + receive_id.encode()
    pad = 32 - len(body) % 32
    body += bytes([pad]) * pad
    enc = _cipher(aes_key).encryptor()
    return base64.b64encode(enc.update(body) + enc.finalize()).decode()
