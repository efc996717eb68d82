"""Fixtures for the emulator's own tests: an empty corp per test, a demo corp per module, a plain
`requests` API helper, and a callback receiver that decrypts with an independent implementation."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.emulator.wxcrypt import decrypt, signature
from tests.helpers import TEST_SETTINGS
from wecom.emulator import Emulator

CORP_ID = TEST_SETTINGS["WECOM_CORP_ID"]
CONTACT_SECRET = TEST_SETTINGS["WECOM_CONTACT_SECRET"]
AGENT_ID = TEST_SETTINGS["WECOM_AGENT_ID"]
AGENT_SECRET = TEST_SETTINGS["WECOM_AGENT_SECRET"]
TOKEN = TEST_SETTINGS["WECOM_TOKEN"]
AES_KEY = TEST_SETTINGS["WECOM_ENCODING_AES_KEY"]


def make_emulator(seed: Any = None, **kw: Any) -> Emulator:
    kw.setdefault("callback_timeout", 1.0)
    kw.setdefault("callback_backoff", (0.0, 0.0, 0.0))
    return Emulator(corp_id=CORP_ID, contact_secret=CONTACT_SECRET, agent_id=AGENT_ID, agent_secret=AGENT_SECRET,
                    token=TOKEN, encoding_aes_key=AES_KEY, seed=seed, **kw).start()


class Api:
    """Plain HTTP against the emulator: `api.get(path, **query)`, `api.post(path, body)` -> JSON dict."""

    def __init__(self, emu: Emulator, app: str = "contact", refresh: bool = True) -> None:
        self.emu = emu
        self.refresh = refresh  # refetch the token once on 42001 (clock advances expire it)
        self.session = requests.Session()
        self.secret = CONTACT_SECRET if app == "contact" else AGENT_SECRET
        self._token: str | None = None

    @property
    def token(self) -> str:
        if self._token is None:
            data = self.session.get(self.emu.url + "/cgi-bin/gettoken",
                                    params={"corpid": CORP_ID, "corpsecret": self.secret}, timeout=5).json()
            assert data["errcode"] == 0, data
            self._token = data["access_token"]
        return self._token

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self._call("GET", path, query, None)

    def post(self, path: str, body: Any = None, **query: Any) -> dict[str, Any]:
        return self._call("POST", path, query, body if body is not None else {})

    def _call(self, method: str, path: str, query: dict[str, Any], body: Any) -> dict[str, Any]:
        explicit = "access_token" in query
        for _ in range(2):
            params = query if explicit else {**query, "access_token": self.token}
            data = self.session.request(method, self.emu.url + "/cgi-bin/" + path, params=params, json=body,
                                        timeout=10).json()
            if explicit or not self.refresh or data.get("errcode") != 42001:
                break
            self._token = None
        return data

    def ok(self, path: str, body: Any = None) -> dict[str, Any]:
        data = self.post(path, body)
        assert data["errcode"] == 0, data
        assert data["errmsg"] == "ok"
        return data

    def code(self, path: str, body: Any = None) -> int:
        return int(self.post(path, body)["errcode"])


class Receiver:
    """A callback endpoint on 127.0.0.1 that checks signatures and decrypts independently."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # statuses to answer, in order; then 200
        self.delays: list[float] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wecom/callback"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        body = req.get_data(as_text=True)
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            delay = self.delays.pop(0) if self.delays else 0.0
            self.requests.append({"args": req.args.to_dict(), "body": body})
        if delay:
            time.sleep(delay)
        return Response("success" if status == 200 else "no", status=status)(environ, start_response)

    def events(self) -> list[str]:
        """Decrypted payloads of the distinct deliveries (retries collapsed), signatures checked."""
        out: list[str] = []
        seen: set[str] = set()
        for item in self.requests:
            args, body = item["args"], item["body"]
            encrypt = body.split("<Encrypt><![CDATA[")[1].split("]]></Encrypt>")[0]
            assert args["msg_signature"] == signature(TOKEN, args["timestamp"], args["nonce"], encrypt)
            if encrypt in seen:
                continue
            seen.add(encrypt)
            msg, receive_id = decrypt(AES_KEY, encrypt)
            assert receive_id == CORP_ID
            out.append(msg)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    emu = make_emulator(None)
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def demo_emulator() -> Iterator[Emulator]:
    emu = make_emulator("demo")
    yield emu
    emu.stop()


@pytest.fixture()
def api(emulator: Emulator) -> Api:
    return Api(emulator)


@pytest.fixture()
def receiver(emulator: Emulator) -> Iterator[Receiver]:
    rec = Receiver()
    emulator.callback_url = rec.url
    yield rec
    rec.close()


@pytest.fixture()
def corp(emulator: Emulator) -> dict[str, Any]:
    """A tiny corp: two members, one tag group, two customers of alice (one also of bob)."""
    act = emulator.act
    act.add_staff("alice", "张三", [2])
    act.add_staff("bob", "李四", [2])
    act.add_staff("carol", "王五", [3])
    gid, (t1, t2, t3) = act.corp_tag_group_created("客户等级", ["A类", "B类", "C类"])
    c1 = act.customer_adds_staff("alice", name="客户甲", state="expo", welcome_code=False)
    c2 = act.customer_adds_staff("alice", name="客户乙", welcome_code=False)
    emulator.clock.advance(1)  # bob is c1's most recent contact
    act.customer_adds_staff("bob", name="客户甲", external_userid=c1, welcome_code=False)
    assert emulator.wait_idle(10)
    return {"group": gid, "tags": [t1, t2, t3], "c1": c1, "c2": c2}
