"""The production recipe, started from the README's own words and driven: on PostgreSQL, the
`deploy/run.sh` line of the README's production section starts gunicorn and two `flask worker`
processes; callbacks, a full sync and API tag edits go through them; each scheduled job runs once
across both workers' schedulers; SIGTERM stops everything cleanly."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from core.jobs import JOBS, period
from core.settings import Settings
from tests.helpers import TEST_SETTINGS
from wecom.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- production-recipe:"


def readme_command() -> str:
    """The `deploy/run.sh` line of the README's production block, as a user would type it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(MARK):]
    block = block[block.index("```sh") + 5:block.index("```", block.index("```sh") + 5)]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    (command,) = [line for line in lines if "deploy/run.sh" in line]
    return command


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def database() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgres"):
        if os.environ.get("SCRM_REQUIRE_POSTGRES"):
            pytest.fail("TEST_DATABASE_URL must point at PostgreSQL")
        pytest.skip("the production recipe runs on PostgreSQL (this run is on SQLite)")
    url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"scrm_recipe_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _wait(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


@pytest.mark.timeout(600)
def test_the_readme_recipe_runs_and_carries_the_product(app: Any, database: str, tmp_path: Path) -> None:
    """(`app`: the packages register their scheduled jobs in `core.jobs.JOBS` when the app is made.)"""
    command = readme_command()
    assert command.startswith("SCRM_WORKERS=2 deploy/run.sh")
    web_port = _port()
    emu = Emulator(corp_id=TEST_SETTINGS["WECOM_CORP_ID"], contact_secret=TEST_SETTINGS["WECOM_CONTACT_SECRET"],
                   agent_id=TEST_SETTINGS["WECOM_AGENT_ID"], agent_secret=TEST_SETTINGS["WECOM_AGENT_SECRET"],
                   token=TEST_SETTINGS["WECOM_TOKEN"], encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"],
                   callback_url=f"http://127.0.0.1:{web_port}/wecom/callback", seed=300,
                   callback_backoff=(0.2, 0.5, 1.0)).start()
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items() if k.isupper()},
           "DATABASE_URL": database, "SECRET_KEY": "recipe-secret", "WECOM_API_BASE": emu.url,
           "WECOM_OAUTH_BASE": emu.url, "SCRM_BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "2",
           "LOG_LEVEL": "INFO", "PYTHON": str(ROOT / ".venv" / "bin" / "python"), "FLASK_APP": "app"}
    env.pop("TESTING", None)
    log_path = tmp_path / "recipe.log"
    log = open(log_path, "wb")
    recipe = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=log, stderr=log,
                              start_new_session=True)
    engine = create_engine(database)
    flask = [env["PYTHON"], "-m", "flask"]
    try:
        _wait("the web server", lambda: _ok(f"http://127.0.0.1:{web_port}/livez"), 90)
        _wait("two workers listening", lambda: log_path.read_text(errors="replace").count(
            "woken by PostgreSQL NOTIFY") >= 2, 60)

        # callbacks: customers add a member in WeCom; the workers apply them
        emu.act.add_staff("zhangsan", "张三")
        exts = [emu.act.customer_adds_staff("zhangsan", name=f"生产客户{i}", welcome_code=(i % 5 == 0))
                for i in range(40)]
        assert emu.wait_idle(60)
        _wait("every callback applied", lambda: _scalar(
            engine, "SELECT count(*) FROM wecom_inbox WHERE status = 'done'") >= 40 and not _scalar(
            engine, "SELECT count(*) FROM wecom_inbox WHERE status = 'pending'"), 90)
        assert _scalar(engine, "SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg'") == 8

        # a full sync, the way the README says to run one
        sync = subprocess.run([*flask, "wecom", "sync"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        summary = emu.state.summary()
        assert _scalar(engine, "SELECT count(*) FROM follow_relations WHERE status = 'active'") == summary["relations"]

        # tag edits through the API: a job in the workers, one mark_tag per relation through the outbox
        _group, (tag_id,) = emu.act.corp_tag_group_created("生产标签", ["已回访"])
        _wait("the tag's callback", lambda: _scalar(engine, f"SELECT count(*) FROM tags WHERE tag_id = '{tag_id}'"))
        token = subprocess.run([*flask, "tokens", "create", "--name", "recipe", "--role", "admin"], cwd=ROOT,
                               env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        resp = requests.post(f"http://127.0.0.1:{web_port}/api/v1/tags/bulk", timeout=30,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"add": [tag_id], "external_userids": exts[:10]})
        assert resp.status_code == 202, resp.text
        _wait("the tags reach WeCom", lambda: all(tag_id in emu.state.relation_tags("zhangsan", ext)
                                                  for ext in exts[:10]), 120)

        # both workers run the scheduler and fire `tag_jobs` (every 30 s) at about the same moment:
        # one runs it, the other finds it ran this period and skips
        _wait("both schedulers firing tag_jobs", lambda: "core.jobs.skipped name=tag_jobs" in log_path.read_text(
            errors="replace") and "core.jobs.done name=tag_jobs" in log_path.read_text(errors="replace"), 90)
        runs = re.findall(r"^(\S+ \S+) INFO scrm.core.jobs \[-\] core.jobs.done name=(\S+)",
                          log_path.read_text(errors="replace"), re.M)
        assert len(set(re.findall(r"core.jobs.scheduler-started owner=(\S+)", log_path.read_text()))) == 2
        by_job: dict[str, list[dt.datetime]] = {}
        for at, name in runs:
            by_job.setdefault(name, []).append(dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f"))
        assert "tag_jobs" in by_job, by_job  # every 30 s: it ran while the test drove the product
        conf = Settings.load(override={k: v for k, v in TEST_SETTINGS.items() if k.isupper()})
        for name, starts in by_job.items():
            every = period(JOBS[name].trigger(conf))
            assert every is not None
            gaps = [b - a for a, b in zip(starts, starts[1:])]
            assert all(gap >= every * 0.75 for gap in gaps), (name, starts)  # not once per worker
    finally:
        os.killpg(recipe.pid, signal.SIGTERM)
        try:
            code = recipe.wait(60)
        finally:
            if recipe.poll() is None:
                os.killpg(recipe.pid, signal.SIGKILL)
            log.close()
            engine.dispose()
            emu.stop()
    assert code == 0, log_path.read_text(errors="replace")[-4000:]


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
