#!/usr/bin/env python3
"""Apply-rate benchmark: how many inbox events a second `flask worker` processes turn into customers.

Starts, on a fresh database (PostgreSQL by default): the web server as the production recipe runs it
(`deploy/gunicorn.conf.py`) and the WeCom emulator under gunicorn in its own process (so it answers
at once and its cost is not the worker's), its callbacks going to the web server. Then:

1. N distinct customers add a staff member (N real encrypted add_external_contact callbacks) with no
   worker running, so the inbox holds N pending events; one `flask worker` is started and timed
   until the inbox is empty: the apply rate of one worker.
2. The same with N more customers and two workers.
3. Sustained load: customers keep adding at 200 a second for S seconds while one worker runs; the
   pending backlog is sampled every 0.2 s. The inbox must not grow.

It checks every event was applied exactly once (one audit row each, one active relation each) and
counts WeCom calls (one `externalcontact/get` per customer).

    .venv/bin/python bench/apply.py [--events 5000] [--sustain 20] [--json out.json]
    BENCH_DATABASE_URL=sqlite .venv/bin/python bench/apply.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)

from common import emit_rows, row  # noqa: E402
from stack import Stack, add_customers  # noqa: E402

def applying_seconds(stack: Stack, first_id: int) -> float:
    """From the first to the last event applied among rows with id >= first_id (process start-up excluded)."""
    span = stack.db.scalar(f"SELECT EXTRACT(EPOCH FROM max(processed_at) - min(processed_at)) FROM wecom_inbox "
                           f"WHERE id >= {int(first_id)}" if stack.kind == "PostgreSQL" else
                           f"SELECT (julianday(max(processed_at)) - julianday(min(processed_at))) * 86400 "
                           f"FROM wecom_inbox WHERE id >= {int(first_id)}")
    return float(span or 0.0)


def drain(stack: Stack, workers: int, expected_rows: int, timeout: float = 900) -> float:
    """Start `workers` processes and time them until every inbox row is done; seconds (with start-up)."""
    started = time.monotonic()
    stack.start_workers(workers, "--no-scheduler")
    while time.monotonic() - started < timeout:
        if stack.pending() == 0 and (stack.db.scalar("SELECT count(*) FROM wecom_inbox") or 0) >= expected_rows:
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"the inbox was not drained in {timeout:.0f}s")
    elapsed = time.monotonic() - started
    stack.stop_workers()
    return elapsed


def sustain(stack: Stack, rate: float, seconds: float, prefix: str) -> dict[str, Any]:
    """Customers add at `rate`/s while one worker runs; the pending backlog, sampled."""
    stack.start_workers(1, "--no-scheduler")
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(stack.pending())
            stop.wait(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    session = requests.Session()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        while sent < due:
            session.post(f"{stack.emulator}/emulator/act/customer_adds_staff", timeout=30,
                         json={"userid": "zhangsan", "name": f"{prefix}{sent}", "welcome_code": False}).raise_for_status()
            sent += 1
        time.sleep(0.002)
    achieved = sent / (time.monotonic() - started)
    stack.wait_delivered()
    drained_at = time.monotonic()
    while stack.pending() and time.monotonic() - drained_at < 120:
        time.sleep(0.05)
    tail = time.monotonic() - drained_at
    stop.set()
    sampler.join()
    stack.stop_workers()
    half = len(samples) // 2
    return {"rate": achieved, "seconds": seconds, "events": sent, "max_pending": max(samples or [0]),
            "pending_first_half_max": max(samples[:half] or [0]), "pending_second_half_max": max(samples[half:] or [0]),
            "drain_after_last_s": tail}


def run(events: int, sustain_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(tmp).start()
        try:
            add_customers(stack, events, "一号批客户")
            stack.wait_delivered()
            gets_before = stack.calls("/cgi-bin/externalcontact/get")
            one_total = drain(stack, 1, events)
            one = applying_seconds(stack, 0)
            gets_one = stack.calls("/cgi-bin/externalcontact/get") - gets_before
            second_first = int(stack.db.scalar("SELECT coalesce(max(id), 0) FROM wecom_inbox")) + 1
            add_customers(stack, events, "二号批客户")
            stack.wait_delivered()
            two_total = drain(stack, 2, 2 * events)
            two = applying_seconds(stack, second_first)
            steady = sustain(stack, 200, sustain_s, "持续客户") if sustain_s else {}
            total = 2 * events + steady.get("events", 0)
            db = stack.db
            figures = {
                "database": stack.kind, "events": events,
                "one_worker_s": one, "one_worker_rate": events / one, "one_worker_with_startup_s": one_total,
                "two_workers_s": two, "two_workers_rate": events / two, "two_workers_with_startup_s": two_total,
                "externalcontact_get_per_event": gets_one / events,
                "sustained": steady,
                "inbox_rows": db.scalar("SELECT count(*) FROM wecom_inbox"),
                "done": db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'done'"),
                "events_with_one_audit_row": db.scalar(
                    "SELECT count(*) FROM (SELECT target_id FROM audit_log WHERE actor = 'wecom' "
                    "GROUP BY target_id HAVING count(*) = 1) x"),
                "audit_rows": db.scalar("SELECT count(*) FROM audit_log WHERE actor = 'wecom'"),
                "active_relations": db.scalar("SELECT count(*) FROM follow_relations WHERE status = 'active'"),
                "expected": total,
            }
        finally:
            stack.stop()
    figures["exactly_once"] = (figures["inbox_rows"] == figures["done"] == figures["expected"]
                               == figures["audit_rows"] == figures["events_with_one_audit_row"]
                               == figures["active_relations"])
    return figures


def report(f: dict[str, Any]) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"database {f['database']}, emulator under gunicorn in its own process")
    print("| workers | events | applying (first to last) | events/s | with process start-up |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| 1 | {f['events']:,} | {f['one_worker_s']:.1f} s | {f['one_worker_rate']:,.0f} | "
          f"{f['one_worker_with_startup_s']:.1f} s |")
    print(f"| 2 | {f['events']:,} | {f['two_workers_s']:.1f} s | {f['two_workers_rate']:,.0f} | "
          f"{f['two_workers_with_startup_s']:.1f} s |")
    print(f"externalcontact/get per event: {f['externalcontact_get_per_event']:.2f}")
    s = f["sustained"]
    if s:
        grows = s["pending_second_half_max"] > max(50, 2 * s["pending_first_half_max"])
        print(f"sustained {s['rate']:.0f} callbacks/s (target 200) for {s['seconds']:.0f}s with one worker: pending at most "
              f"{s['max_pending']} (first half {s['pending_first_half_max']}, second half "
              f"{s['pending_second_half_max']}); empty {s['drain_after_last_s']:.1f}s after the last callback: "
              f"{'GROWS' if grows else 'does not grow'}")
    target = f["one_worker_rate"] >= 400 and f["two_workers_rate"] > f["one_worker_rate"]
    print(f"target (one worker ≥ 400/s, two more than one): {'met' if target else 'MISSED'}; "
          f"exactly once: {'yes' if f['exactly_once'] else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--sustain", type=float, default=20.0)
    parser.add_argument("--json", default="")
    opts = parser.parse_args()
    figures = run(opts.events, opts.sustain)
    report(figures)
    if opts.json:
        Path(opts.json).write_text(json.dumps({"apply": figures}, indent=2))
    f, s = figures, figures["sustained"]
    case = f"{f['database']}, {f['events']:,} add events"
    rows = [row("apply rate", case + ", 1 worker", "events/s", round(f["one_worker_rate"]), "/s", "≥ 400/s",
                f["one_worker_rate"] >= 400),
            row("apply rate", case + ", 2 workers", "events/s", round(f["two_workers_rate"]), "/s", "> 1 worker",
                f["two_workers_rate"] > f["one_worker_rate"]),
            row("apply rate", f"{f['database']}, exactly once", "one audit row per event",
                1 if f["exactly_once"] else 0, "", "yes", f["exactly_once"])]
    if s:
        grows = s["pending_second_half_max"] > max(50, 2 * s["pending_first_half_max"])
        rows.append(row("apply rate", f"{f['database']}, {s['rate']:.0f} callbacks/s for {s['seconds']:.0f} s, 1 worker",
                        "most pending", s["max_pending"], "events", "does not grow", not grows))
    emit_rows(rows)
    if not figures["exactly_once"]:
        raise SystemExit("not every event was applied exactly once")


if __name__ == "__main__":
    main()
