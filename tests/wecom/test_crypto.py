"""Callback crypto: WeCom's official vector (A), wechatpy's vectors (B) and the hardening."""

from __future__ import annotations

import base64
import struct
from urllib.parse import unquote

import pytest

from wecom import crypto as crypto_module
from wecom.crypto import (BadSignature, CallbackCrypto, CallbackError, DecryptError, MalformedXML, WrongCorp,
                          parse_xml)
from wechatpy.crypto.base import WeChatCipher

# Vector A: wecom-api.md §2.4, the official example.
A = CallbackCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
A2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJT"
    "s3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hg"
    "f5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4Ehz"
    "JWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
A2_MSG = ("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]>"
          "</FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
          "<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>")

# Vector B: wechatpy's tests/test_crypto.py.
B = CallbackCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
B2_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6y"
    "dJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/T"
    "ywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5"
    "t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
B3_PLAIN = ("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName>"
            "<![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
            "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>")
B3_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesE"
    "l5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsD"
    "f03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nT"
    "YjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)


def _envelope(encrypted: str, to: str = "wx5823bf96d3bd56c7") -> bytes:
    return (f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[218]]></AgentID></xml>").encode()


def _raw_plaintext(c: CallbackCrypto, encrypted: str) -> bytes:
    return WeChatCipher(c.key).decrypt(base64.b64decode(encrypted))


# ---------------------------------------------------------------- Vector A


def test_vector_a1_url_check() -> None:
    echostr = unquote("P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
    assert A.verify_url("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
                        echostr) == "1616140317555161061"
    raw = _raw_plaintext(A, echostr)
    assert raw[:16] == b"c41b64491c2468d0" and raw[-1] == 7


def test_vector_a2_decrypt() -> None:
    plaintext, data = A.decrypt("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149",
                                _envelope(A2_ENCRYPT))
    assert plaintext == A2_MSG
    assert data == {"ToUserName": "wx5823bf96d3bd56c7", "FromUserName": "mycreate", "CreateTime": "1409659813",
                    "MsgType": "text", "Content": "hello", "MsgId": "4561255354251345929", "AgentID": "218"}
    raw = _raw_plaintext(A, A2_ENCRYPT)
    assert raw[:16] == b"0960688932c47ef1" and raw[-1] == 30  # a pad > 16: a 16-byte unpadder would fail
    assert A.signature("1409659813", "1372623149", A2_ENCRYPT) == "477715d11cdb4164915debcba66cb864d751f3e6"


# ---------------------------------------------------------------- Vector B


def test_vector_b1_url_check_and_wrong_nonce() -> None:
    args = ("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780")
    echostr = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
    assert B.verify_url(*args, "437374425", echostr) == "5927782489442352469"
    with pytest.raises(BadSignature):
        B.verify_url(*args, "437374424", echostr)
    # wechatpy's own entry point goes through the same checks.
    with pytest.raises(BadSignature):
        B.check_signature(*args, "437374424", echostr)


def test_vector_b2_decrypt() -> None:
    plaintext, data = B.decrypt("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294",
                                _envelope(B2_ENCRYPT, "wx49f0ab532d5d035a"))
    assert plaintext == ("<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA["
                         "messense]]></FromUserName>\n<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]>"
                         "</MsgType>\n<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n"
                         "<AgentID>1</AgentID>\n</xml>")
    assert data["Content"] == "test" and data["MsgId"] == "4363689963896700987"


def test_vector_b3_deterministic_encrypt() -> None:
    query, body = B.encrypt_envelope(B3_PLAIN, timestamp=1411525903, nonce="461056294",
                                     random_prefix=b"1234567890123456")
    assert query == {"msg_signature": "407518b7649e86ef23978113f92d27afa9296533", "timestamp": "1411525903",
                     "nonce": "461056294"}
    assert parse_xml(body)["Encrypt"] == B3_ENCRYPT
    assert B.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], body)[0] == B3_PLAIN


# ---------------------------------------------------------------- padding, round trips


def test_padding_of_exactly_32_bytes_round_trips() -> None:
    overhead = 16 + 4 + len(B.corp_id)
    fixed = overhead + len("<xml><a></a></xml>")
    msg = "<xml><a>" + "x" * (32 + (-fixed) % 32) + "</a></xml>"
    assert (overhead + len(msg)) % 32 == 0  # already aligned: a whole block of padding
    query, body = B.encrypt_envelope(msg)
    raw = _raw_plaintext(B, parse_xml(body)["Encrypt"])
    assert raw[-32:] == bytes([32]) * 32
    assert B.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], body)[0] == msg


def test_round_trip_chinese_and_echostr() -> None:
    msg = "<xml><Content><![CDATA[您好，企业微信]]></Content></xml>"
    query, body = A.encrypt_envelope(msg)
    assert A.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], body) == (
        msg, {"Content": "您好，企业微信"})
    check = A.encrypt_echostr("1234567890")
    assert A.verify_url(check["msg_signature"], check["timestamp"], check["nonce"], check["echostr"]) == "1234567890"


def test_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = crypto_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(crypto_module.hmac, "compare_digest", spy)
    with pytest.raises(BadSignature):
        A.decrypt("0" * 40, "1409659813", "1372623149", _envelope(A2_ENCRYPT))
    assert calls == [(b"477715d11cdb4164915debcba66cb864d751f3e6", b"0" * 40)]


# ---------------------------------------------------------------- refusals


def _signed(c: CallbackCrypto, encrypted: str) -> tuple[str, str, str, bytes]:
    return c.signature("1", "n", encrypted), "1", "n", _envelope(encrypted)


def test_tampered_ciphertext_is_a_decrypt_error() -> None:
    raw = bytearray(base64.b64decode(A2_ENCRYPT))
    raw[-17] ^= 0x01  # flips the last plaintext byte (the pad value) through CBC
    tampered = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptError):
        A.decrypt(*_signed(A, tampered))


@pytest.mark.parametrize("encrypted", ["not base64 at all!", base64.b64encode(b"x" * 40).decode(), "AAAA"])
def test_garbage_is_a_decrypt_error(encrypted: str) -> None:
    with pytest.raises(DecryptError):
        A.decrypt(*_signed(A, encrypted))


def test_length_prefix_out_of_range_is_a_decrypt_error() -> None:
    body = b"r" * 16 + struct.pack(">I", 10_000) + b"<xml/>" + A.corp_id.encode()
    pad = 32 - len(body) % 32
    encrypted = base64.b64encode(WeChatCipher(A.key).encrypt(body + bytes([pad]) * pad)).decode()
    with pytest.raises(DecryptError):
        A.decrypt(*_signed(A, encrypted))


def test_another_corps_receive_id_is_refused() -> None:
    other = CallbackCrypto(A.token, "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwsomeoneelse0001")
    query, body = other.encrypt_envelope("<xml><a>1</a></xml>")
    with pytest.raises(WrongCorp):
        A.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], body)
    check = other.encrypt_echostr("42")
    with pytest.raises(WrongCorp):
        A.verify_url(check["msg_signature"], check["timestamp"], check["nonce"], check["echostr"])


BOMB = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        '<xml><Encrypt>&d;</Encrypt></xml>')


@pytest.mark.parametrize("body", [
    BOMB,
    '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><Encrypt>abc</Encrypt></xml>',  # DOCTYPE, no entity
    "<xml><Encrypt>abc</Encrypt>",  # not well-formed
    "<xml><ToUserName>x</ToUserName></xml>",  # no Encrypt
    "<xml><Encrypt></Encrypt></xml>",  # empty Encrypt
    "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",  # two of them
    "<notxml><Encrypt>abc</Encrypt></notxml>",
    "<xml>just text</xml>",
    "",
])
def test_malformed_outer_xml(body: str) -> None:
    with pytest.raises(MalformedXML):
        A.decrypt("0" * 40, "1", "n", body.encode())


def test_entity_bomb_inside_the_encrypted_plaintext() -> None:
    query, body = A.encrypt_envelope(BOMB.replace("<Encrypt>", "<Content>").replace("</Encrypt>", "</Content>"))
    with pytest.raises(MalformedXML):
        A.decrypt(query["msg_signature"], query["timestamp"], query["nonce"], body)


def test_errors_share_one_base() -> None:
    assert all(issubclass(e, CallbackError) for e in (BadSignature, DecryptError, WrongCorp, MalformedXML))


@pytest.mark.parametrize("key", ["short", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C!", "*" * 43])
def test_bad_encoding_aes_key(key: str) -> None:
    with pytest.raises(ValueError):
        CallbackCrypto("t", key, "wwx")


# ---------------------------------------------------------------- parsing


def test_mem_change_list_has_one_shape() -> None:
    items = parse_xml("<xml><MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList></xml>")
    one = parse_xml("<xml><MemChangeList><Item>Jack</Item></MemChangeList></xml>")
    old = parse_xml("<xml><MemChangeList><![CDATA[Jack,Rose]]></MemChangeList></xml>")
    empty = parse_xml("<xml><MemChangeList></MemChangeList></xml>")
    assert items["MemChangeList"] == old["MemChangeList"] == ["Jack", "Rose"]
    assert one["MemChangeList"] == ["Jack"] and empty["MemChangeList"] == []
