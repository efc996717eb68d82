#!/usr/bin/env python3
"""Callback ingest benchmark: how fast `/wecom/callback` answers under gunicorn (2 workers),
beside a trivial endpoint (`/livez`) of the same server.

Starts gunicorn on a fresh temporary database (PostgreSQL when reachable, else SQLite; no worker
runs, so this is the ingest path alone: verify, decrypt, parse, store, answer), then sends a
bounded number of requests over loopback from a few client threads: distinct real encrypted
callbacks (add_external_contact, as WeCom sends them) and plain GETs of `/livez`. Prints answers
per second and p50/p99 answer latency for each.

    .venv/bin/python bench/callbacks.py [REQUESTS=2000] [CLIENT_THREADS=8]
    BENCH_DATABASE_URL=sqlite .venv/bin/python bench/callbacks.py        # force SQLite
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from worker_crash import ENV, PY, Db, database, free_port, wait_http  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(n: int, threads: int, make: Callable[[int], tuple[str, str, dict[str, str] | None, bytes | None]]
        ) -> tuple[float, list[float], int]:
    """Send n requests from `threads` threads; (seconds, latencies in ms, non-200 answers)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(n))

    def client() -> None:
        session = requests.Session()
        mine: list[float] = []
        bad = 0
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            method, url, params, body = make(i)
            start = time.perf_counter()
            resp = session.request(method, url, params=params, data=body, timeout=10)
            mine.append((time.perf_counter() - start) * 1000)
            if resp.status_code != 200:
                bad += 1
        session.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started, latencies, errors[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    from wecom.crypto import CallbackCrypto
    from wecom.emulator.callbacks import event_xml

    crypto = CallbackCrypto(ENV["WECOM_TOKEN"], ENV["WECOM_ENCODING_AES_KEY"], ENV["WECOM_CORP_ID"])
    with tempfile.TemporaryDirectory() as tmp:
        db_url, kind, drop = database(tmp)
        env = {**os.environ, **ENV, "DATABASE_URL": db_url, "WECOM_API_BASE": "http://127.0.0.1:9"}
        logs = open(Path(tmp) / "server.log", "ab")
        server = None
        try:
            subprocess.run([PY, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
            port = free_port()
            server = subprocess.Popen([PY, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                                       "app:create_app()"], cwd=ROOT, env=env, stdout=logs, stderr=logs)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/livez", server)
            # every payload distinct (one customer each), encrypted before the clock starts
            now = int(time.time())
            envelopes = [crypto.encrypt_envelope(event_xml(
                ENV["WECOM_CORP_ID"], now, "change_external_contact", "add_external_contact",
                [("UserID", "zhangsan"), ("ExternalUserID", f"wm{uuid.uuid4().hex}"), ("State", "bench")]))
                for _ in range(n)]
            run(50, threads, lambda i: ("GET", base + "/livez", None, None))  # warm both workers up
            results = {
                "GET /livez (trivial)": run(n, threads, lambda i: ("GET", base + "/livez", None, None)),
                "POST /wecom/callback": run(n, threads, lambda i: ("POST", base + "/wecom/callback",
                                                                   envelopes[i][0], envelopes[i][1])),
            }
            stored = Db(db_url).scalar("SELECT count(*) FROM wecom_inbox")
        finally:
            if server is not None:
                server.terminate()
                server.wait(15)
            logs.close()
            drop()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"database {kind}, gunicorn 2 sync workers, {threads} client threads on loopback, {n} requests each")
    print(f"{'endpoint':<24} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    for name, (seconds, latencies, errors) in results.items():
        print(f"{name:<24} {len(latencies) / seconds:>10.0f} {statistics.median(latencies):>8.1f} "
              f"{percentile(latencies, 99):>8.1f} {errors:>8}")
    print(f"inbox rows stored: {stored} (expected {n})")


if __name__ == "__main__":
    main()
