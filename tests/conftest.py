"""Fixtures shared by every test.

- One database per test session, migrated with the real Alembic revisions: a temporary SQLite
  file by default, or a fresh PostgreSQL database (created here, dropped at the end) when
  `TEST_DATABASE_URL` points at a PostgreSQL server. Every table is emptied after each test.
- An autouse guard fails any test that opens a connection outside the loopback range.
- `SCRM_REQUIRE_POSTGRES=1` / `SCRM_REQUIRE_CHROMIUM=1` (set by `.ci/run`) turn the skips of
  tests that need them into failures.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.helpers import TEST_SETTINGS

# ---------------------------------------------------------------- network guard


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host != "localhost" and (ip is None or not ip.is_loopback):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# ---------------------------------------------------------------- database


def _postgres_database(base_url: str) -> Iterator[str]:
    """Create a database of our own on the server, yield its URL, drop it afterwards."""
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"scrm_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("SCRM_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL unreachable at {base_url}: {exc}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL", "")
    if base.startswith(("postgres://", "postgresql")):
        yield from _postgres_database(base)
    else:
        path = tmp_path_factory.mktemp("db") / "scrm.db"
        yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from app import create_app

    instance = tmp_path_factory.mktemp("instance")
    application = create_app({**TEST_SETTINGS, "TESTING": True, "DATABASE_URL": database_url,
                              "SECRET_KEY": "test-secret", "SCRM_EMBEDDED_WORKER": False})
    application.instance_path = str(instance)
    with application.app_context():
        upgrade()
    yield application
    from core.db import dispose_engines

    dispose_engines(application)


@pytest.fixture()
def db_session(app: Flask) -> Iterator[Any]:
    """An app context for the test; every table is emptied afterwards."""
    from core.db import db

    with app.app_context():
        yield db.session
        db.session.rollback()
        _empty_tables()
        db.session.remove()


def _empty_tables() -> None:
    """DELETE on SQLite; on PostgreSQL one TRUNCATE of every table but Alembic's. A DELETE there fires the
    facets triggers for every customer a test left (minutes after the 25,000-customer tests) and leaves
    dead rows behind for the rest of the run (autovacuum is off on this machine), so later tests would
    plan against tables bloated a hundredfold and statistics taken when they were nearly empty."""
    from core.db import db

    if db.engine.dialect.name == "postgresql":
        try:
            with db.engine.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a session a test left open: DELETE instead
                names = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                          "AND tablename <> 'alembic_version'")).scalars().all()
                if names:
                    conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names)))
            return
        except OperationalError:
            pass
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture()
def client(app: Flask, db_session: Any) -> Any:
    return app.test_client()


@pytest.fixture()
def runner(app: Flask, db_session: Any) -> Any:
    return app.test_cli_runner()


# ---------------------------------------------------------------- live server and browser


class LiveServer:
    """The app served over real HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, application: Flask) -> None:
        import threading

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, application, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture()
def live_server(app: Flask, db_session: Any) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; a skip locally, a failure in CI when it is missing."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("SCRM_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN")
    pg = context.new_page()
    yield pg
    context.close()


# ---------------------------------------------------------------- the emulator as the app's WeCom


def _drop_clients(app: Flask) -> None:
    for key in ("scrm.wecom.contact_client", "scrm.wecom.agent_client"):
        app.extensions.pop(key, None)


@pytest.fixture()
def emu(app: Flask, db_session: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An empty emulated corp that the running app talks to: its API and OAuth base point at it, the
    cached clients are dropped, retries are kept short. Tests add staff and customers with `emu.act`."""
    from core.settings import settings
    from wecom.client import agent_client, contact_client
    from wecom.emulator import Emulator

    emulator = Emulator(corp_id=TEST_SETTINGS["WECOM_CORP_ID"], contact_secret=TEST_SETTINGS["WECOM_CONTACT_SECRET"],
                        agent_id=TEST_SETTINGS["WECOM_AGENT_ID"], agent_secret=TEST_SETTINGS["WECOM_AGENT_SECRET"],
                        token=TEST_SETTINGS["WECOM_TOKEN"], encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"],
                        callback_url=None, seed=None, callback_backoff=(0.05, 0.1, 0.2)).start(host="127.0.0.1", port=0)
    conf = settings()
    monkeypatch.setattr(conf, "WECOM_API_BASE", emulator.url)
    monkeypatch.setattr(conf, "WECOM_OAUTH_BASE", emulator.url)
    _drop_clients(app)
    contact_client().backoff = agent_client().backoff = 0.01  # the client's own retries, kept short
    try:
        yield emulator
    finally:
        _drop_clients(app)
        emulator.stop()
