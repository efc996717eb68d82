#!/usr/bin/env python3
"""Crash benchmark: `kill -9` the worker mid-burst, restart it, check every event applied exactly once.

Starts, against a fresh temporary database (PostgreSQL when reachable, else SQLite):
the web server (gunicorn, 2 workers, embedded worker off), one `flask worker` process, and the
WeCom emulator in this process with its callback URL on the server. Then N distinct customers add
a staff member (N real encrypted add_external_contact callbacks; every 4th with a WelcomeCode),
the worker is killed with SIGKILL once a fifth of them is applied, started again, and the run
ends when every event is done. Exactly once = one audit row per inbox event, N active relations.

    .venv/bin/python bench/worker_crash.py [N=1000]
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/worker_crash.py
    BENCH_DATABASE_URL=sqlite .venv/bin/python bench/worker_crash.py      # force SQLite
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)
PY = sys.executable
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ENV = {
    "WECOM_CORP_ID": "wwbench000000001", "WECOM_CONTACT_SECRET": "bench-contact-secret",
    "WECOM_AGENT_ID": "1000002", "WECOM_AGENT_SECRET": "bench-agent-secret", "WECOM_TOKEN": "BenchToken",
    "WECOM_ENCODING_AES_KEY": "BenchEncodingAesKey0123456789abcdefghijklmn", "FLASK_APP": "app",
    "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", "SCRM_EMBEDDED_WORKER": "0", "SECRET_KEY": "bench",
}
WORKER_ARGS = ["worker", "--lease", "5", "--poll", "0.2", "--batch", "10", "--no-scheduler"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database(tmp: str) -> tuple[str, str, Callable[[], None]]:
    """(url, kind, drop): a fresh PostgreSQL database when reachable, else a SQLite file."""
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
    if base.startswith("postgres"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = make_url(base).set(drivername="postgresql+psycopg")
        name = f"scrm_crash_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # not reachable: fall back to SQLite
            print(f"PostgreSQL unreachable ({exc.__class__.__name__}); using SQLite")
        else:
            def drop() -> None:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()

            return url.set(database=name).render_as_string(hide_password=False), "PostgreSQL", drop
    return f"sqlite:///{tmp}/crash.db", "SQLite", lambda: None


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {seconds} s")


class Db:
    """Read-only figures straight from the database (no app needed)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)
                                    if url.startswith("postgresql://") else url)

    def scalar(self, sql: str) -> Any:
        from sqlalchemy import text

        with self.engine.connect() as c:
            return c.execute(text(sql)).scalar()

    def rows(self, sql: str) -> list[Any]:
        from sqlalchemy import text

        with self.engine.connect() as c:
            return list(c.execute(text(sql)))

    def execute(self, sql: str) -> None:
        from sqlalchemy import text

        with self.engine.begin() as c:
            c.execute(text(sql))
        self.engine.dispose()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    from wecom.emulator import Emulator

    with tempfile.TemporaryDirectory() as tmp:
        db_url, kind, drop = database(tmp)
        env = {**os.environ, **ENV, "DATABASE_URL": db_url}
        logs = open(Path(tmp) / "processes.log", "ab")
        procs: list[subprocess.Popen[bytes]] = []
        emu = Emulator(corp_id=ENV["WECOM_CORP_ID"], contact_secret=ENV["WECOM_CONTACT_SECRET"],
                       agent_id=ENV["WECOM_AGENT_ID"], agent_secret=ENV["WECOM_AGENT_SECRET"],
                       token=ENV["WECOM_TOKEN"], encoding_aes_key=ENV["WECOM_ENCODING_AES_KEY"], seed=None,
                       callback_backoff=(0.2, 0.5, 1.0)).start()
        env["WECOM_API_BASE"] = emu.url
        try:
            subprocess.run([PY, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
            port = free_port()
            server = subprocess.Popen([PY, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "-k", "gthread",
                                       "--threads", "4", "app:create_app()"], cwd=ROOT, env=env, stdout=logs,
                                      stderr=logs)
            procs.append(server)
            wait_http(f"http://127.0.0.1:{port}/livez", server)
            emu.callback_url = f"http://127.0.0.1:{port}/wecom/callback"
            db = Db(db_url)
            worker = subprocess.Popen([PY, "-m", "flask", *WORKER_ARGS], cwd=ROOT, env=env, stdout=logs, stderr=logs)
            procs.append(worker)
            emu.act.add_staff("zhangsan", "张三")
            started = time.monotonic()
            for i in range(n):
                emu.act.customer_adds_staff("zhangsan", name=f"压测客户{i}", welcome_code=(i % 4 == 0))
            killed_at = None
            while time.monotonic() - started < 300:
                done = db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'done'") or 0
                if done >= n // 5:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait(10)
                    killed_at = time.monotonic() - started
                    break
                time.sleep(0.05)
            done_at_kill = db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'done'")
            claimed_at_kill = db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'pending' "
                                        "AND claimed_by IS NOT NULL")
            emu.wait_idle(600)
            ingest_s = time.monotonic() - started
            restarted = time.monotonic()
            worker = subprocess.Popen([PY, "-m", "flask", *WORKER_ARGS], cwd=ROOT, env=env, stdout=logs, stderr=logs)
            procs.append(worker)
            while time.monotonic() - restarted < 600:
                if db.scalar("SELECT count(*) FROM wecom_inbox WHERE status <> 'done'") == 0 and \
                        db.scalar("SELECT count(*) FROM wecom_outbox WHERE status = 'pending'") == 0 and \
                        db.scalar("SELECT count(*) FROM wecom_inbox") >= n:
                    break
                time.sleep(0.1)
            drain_s = time.monotonic() - restarted
            worker.send_signal(signal.SIGTERM)
            clean_exit = worker.wait(30)
            figures = {
                "callbacks delivered": sum(1 for d in emu.deliveries if d.final_status == 200),
                "callback retries": sum(d.attempts - 1 for d in emu.deliveries),
                "inbox rows": db.scalar("SELECT count(*) FROM wecom_inbox"),
                "inbox duplicates counted": db.scalar("SELECT coalesce(sum(duplicates), 0) FROM wecom_inbox"),
                "done at kill": done_at_kill,
                "claimed by the killed worker": claimed_at_kill,
                "done at end": db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'done'"),
                "events with 1 audit row": db.scalar(
                    "SELECT count(*) FROM (SELECT target_id FROM audit_log WHERE actor = 'wecom' "
                    "GROUP BY target_id HAVING count(*) = 1) x"),
                "audit rows (actor wecom)": db.scalar("SELECT count(*) FROM audit_log WHERE actor = 'wecom'"),
                "active relations": db.scalar("SELECT count(*) FROM follow_relations WHERE status = 'active'"),
                "customers": db.scalar("SELECT count(*) FROM customers"),
                "welcome commands done": db.scalar("SELECT count(*) FROM wecom_outbox WHERE kind = 'welcome' "
                                                   "AND status = 'done'"),
                "welcome commands failed": db.scalar("SELECT count(*) FROM wecom_outbox WHERE kind = 'welcome' "
                                                     "AND status = 'failed'"),
                "welcome messages at the emulator": len(emu.state.welcome_messages),
                "externalcontact/get calls": emu.call_count("/cgi-bin/externalcontact/get"),
                "worker exit code after SIGTERM": clean_exit,
            }
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            emu.stop()
            logs.close()
            drop()
    ok = (figures["inbox rows"] == n and figures["done at end"] == n and figures["active relations"] == n
          and figures["events with 1 audit row"] == n and figures["audit rows (actor wecom)"] == n
          and figures["welcome messages at the emulator"] <= (n + 3) // 4)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"database {kind}, gunicorn 2 workers + 1 flask worker")
    print(f"{n} callbacks; worker killed (SIGKILL) after {killed_at:.1f}s; all callbacks answered in "
          f"{ingest_s:.1f}s; restarted worker drained the rest in {drain_s:.1f}s (lease 5 s)")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")
    print("exactly once:", "yes" if ok else "NO")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
