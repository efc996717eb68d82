#!/usr/bin/env python3
"""Full sync benchmark: `flask wecom sync` against `python -m wecom.emulator --seed N`.

For each N it starts the emulator, migrates a fresh database, runs the sync as its own process
and prints: WeCom calls by endpoint, wall time, the sync process's peak RSS, and whether the
local counts equal the emulator's. Memory must not grow with N.

    .venv/bin/python bench/sync.py 10000 100000            # SQLite (a temp file)
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/sync.py 100000
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)
PY = sys.executable

from common import emit_rows, row  # noqa: E402
ENV = {
    "SCRM_DEMO": "1", "WECOM_CORP_ID": "wwbench000000001", "WECOM_CONTACT_SECRET": "bench-contact-secret",
    "WECOM_AGENT_ID": "1000002", "WECOM_AGENT_SECRET": "bench-agent-secret", "WECOM_TOKEN": "BenchToken",
    "WECOM_ENCODING_AES_KEY": "BenchEncodingAesKey0123456789abcdefghijklmn", "FLASK_APP": "app",
    "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 600) -> float:
    start = time.time()
    while time.time() - start < seconds:
        if proc.poll() is not None:
            sys.exit(f"emulator exited with {proc.returncode}")
        try:
            get_json(url)
            return time.time() - start
        except OSError:
            time.sleep(0.5)
    sys.exit(f"emulator did not start within {seconds} s")


CPU: dict[str, float] = {}


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run to completion; return (seconds, peak RSS in MiB) of that one process (its CPU time in CPU)."""
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with {proc.returncode}")
    CPU["sync"] = usage.ru_utime + usage.ru_stime
    return time.time() - start, usage.ru_maxrss // 1024


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a running process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database(tmp: str) -> tuple[str, callable]:
    base = os.environ.get("BENCH_DATABASE_URL", "")
    if not base:
        return f"sqlite:///{tmp}/bench.db", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"scrm_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url.set(database=name).render_as_string(hide_password=False), drop


def bench(n: int) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db_url, drop = database(tmp)
        env = {**os.environ, **ENV, "WECOM_API_BASE": f"http://127.0.0.1:{port}", "DATABASE_URL": db_url}
        emu = subprocess.Popen([PY, "-m", "wecom.emulator", "--port", str(port), "--seed", str(n)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            seed_s = wait_for(f"http://127.0.0.1:{port}/emulator/summary", emu)
            summary = get_json(f"http://127.0.0.1:{port}/emulator/summary")
            subprocess.run([PY, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                           capture_output=True)
            emulator_before = cpu_seconds(emu.pid)
            seconds, rss = run_measured([PY, "-m", "flask", "wecom", "sync"], env)
            CPU["emulator"] = cpu_seconds(emu.pid) - emulator_before
            calls = get_json(f"http://127.0.0.1:{port}/emulator/calls")
            facets = subprocess.run([PY, "-m", "flask", "tagging", "facets"], cwd=ROOT, env=env,
                                    capture_output=True, text=True)
            local = json.loads(subprocess.run(
                [PY, "-c", "from app import create_app; from crm.sync import local_counts; import json, os;"
                           "a = create_app();\nwith a.app_context(): print(json.dumps(local_counts(os.environ['WECOM_CORP_ID'])))"],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout)
        finally:
            emu.terminate()
            emu.wait(timeout=30)
            drop()
    keys = ("staff", "customers", "relations", "tag_groups", "tags", "group_chats")
    return {"n": n, "seed_s": seed_s, "summary": summary, "local": local, "seconds": seconds, "rss_mib": rss,
            "calls": calls, "match": all(summary.get(k) == local.get(k) for k in keys),
            "facets_agree": facets.returncode == 0, "facets_output": facets.stdout.strip()[-300:],
            "cpu_s": dict(CPU)}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    db_kind = "PostgreSQL" if os.environ.get("BENCH_DATABASE_URL") else "SQLite"
    rows: list[dict[str, object]] = []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, database {db_kind}")
    print(f"{'customers':>10} {'relations':>10} {'staff':>6} {'batch calls':>11} {'other calls':>11} "
          f"{'sync s':>8} {'rows/s':>8} {'peak RSS MiB':>12} {'counts equal':>12}")
    for n in sizes:
        r = bench(n)
        calls = r["calls"].get("counts", r["calls"])
        batch = calls.get("/cgi-bin/externalcontact/batch/get_by_user", 0)
        other = sum(v for k, v in calls.items() if k != "/cgi-bin/externalcontact/batch/get_by_user")
        rel = r["summary"]["relations"]
        print(f"{r['summary']['customers']:>10} {rel:>10} {r['summary']['staff']:>6} {batch:>11} {other:>11} "
              f"{r['seconds']:>8.1f} {rel / r['seconds']:>8.0f} {r['rss_mib']:>12} {str(r['match']):>12}")
        if not r["match"]:
            print("  emulator:", r["summary"], "\n  local:   ", r["local"])
        print("  calls:", json.dumps(calls, ensure_ascii=False))
        print("  facets:", r["facets_output"] or "(not used on SQLite)")
        print(f"  CPU: the sync process {r['cpu_s']['sync']:.0f} s, the emulator {r['cpu_s']['emulator']:.0f} s, "
              f"of {r['seconds']:.0f} s (the database server has the rest of 2 cores × the time)")
        staff_batches = -(-r["summary"]["follow_users"] // 100)
        chats = calls.get("/cgi-bin/externalcontact/groupchat/get", 0) + calls.get(
            "/cgi-bin/externalcontact/groupchat/list", 0)
        extra = other - chats - calls.get("/cgi-bin/gettoken", 0) - calls.get(
            "/cgi-bin/externalcontact/get_follow_user_list", 0) - calls.get("/cgi-bin/externalcontact/get_corp_tag_list", 0)
        minimum = batch <= -(-rel // 100) + staff_batches and extra == 0
        case = f"{db_kind}, {rel:,} relations"
        big = rel >= 900_000
        rows += [row("full sync", case, "time", round(r["seconds"], 1), "s", "< 600 s" if big else "",
                     r["seconds"] < 600 if big else None),
                 row("full sync", case, "peak memory", r["rss_mib"], "MiB", "< 300 MiB", r["rss_mib"] < 300),
                 row("full sync", case, "WeCom calls", batch + other, "calls",
                     f"pages ≤ {-(-rel // 100) + staff_batches}, follow list, tag list, chats", minimum),
                 row("full sync", case, "counts and facets agree", 1 if r["match"] and r["facets_agree"] else 0, "",
                     "yes", r["match"] and r["facets_agree"])]
    emit_rows(rows)


if __name__ == "__main__":
    main()
