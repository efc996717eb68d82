#!/usr/bin/env python3
"""Callback ingest benchmark: `/wecom/callback` under gunicorn beside a route that touches nothing
(`/livez`) of the same server, in the same run, loaded by wrk (C, not the bottleneck).

Starts gunicorn as the production recipe runs it (`deploy/gunicorn.conf.py`: one worker per core, gthread
with 8 threads each, the in-process worker off, no control socket) on a fresh database, pre-encrypts
DISTINCT real add_external_contact callbacks (as WeCom sends them) into files, and drives wrk with a Lua
script that walks through them (each wrk thread its own slice, so no payload is sent twice). Phases:

1. `/livez` as fast as it answers (the ceiling of this server on this machine);
2. `/wecom/callback` as fast as it answers, new payloads (throughput, and the ratio to 1);
3. `/wecom/callback` as fast as it answers, every payload of 2 again (all duplicates: as cheap as new?);
4. `/wecom/callback` paced at 1,000 new payloads a second (the Lua script keeps a schedule): p50, p99.

For each phase it reads the CPU time that gunicorn, PostgreSQL and wrk spent per request from /proc,
then checks that the inbox holds exactly one row per distinct payload with every repeat counted, and
times in this process what the endpoint's own steps cost (parse, verify, decrypt, store).

    .venv/bin/python bench/callbacks.py [--seconds 10] [--databases postgresql,sqlite] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)

from common import emit_rows  # noqa: E402
from common import row as table_row  # noqa: E402
from worker_crash import ENV, PY, Db, database, free_port, wait_http  # noqa: E402

LUA = r"""
-- Each wrk thread reads every stride-th line of the payload file, so no payload is sent twice.
-- With a rate (per thread, a second) the thread keeps a schedule instead of sending at once:
-- delay() waits for the next slot, so the load is paced whatever the latency (wrk2-like).
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_usec; } timeval_t;
  int gettimeofday(timeval_t *tv, void *tz);
]]
local tv = ffi.new("timeval_t")
local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, stride = args[1], tonumber(args[2])
  payloads = {}
  local i = 0
  for line in io.lines(path) do
    if i % stride == id then
      local tab = string.find(line, "\t", 1, true)
      table.insert(payloads, {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)})
    end
    i = i + 1
  end
  n = 0
  size = #payloads
  interval = 0
  local rate = tonumber(args[3]) or 0
  if rate > 0 then interval = 1000 / rate end
  next_slot = 0
end

function request()
  n = n + 1
  local p = payloads[n]
  if p == nil then
    -- out of distinct payloads: stop this thread, and send something that is not a callback
    wrk.thread:stop()
    return wrk.format("GET", "/livez")
  end
  return wrk.format("POST", "/wecom/callback?" .. p[1], {["Content-Type"] = "text/xml"}, p[2])
end

function delay()
  if interval == 0 then return 0 end
  local t = now_ms()
  if next_slot == 0 then next_slot = t end
  next_slot = next_slot + interval
  local wait = next_slot - t
  if wait < 0 then return 0 end
  return wait
end

function done(summary, latency, requests)
  local sent = {}
  for i, thread in ipairs(threads) do
    local n = thread:get("n") or 0
    local size = thread:get("size") or 0
    if n > size then n = size end
    table.insert(sent, tostring(n))
  end
  io.write("SENT " .. table.concat(sent, ",") .. "\n")
  io.write(string.format("JSON {\"requests\": %d, \"seconds\": %.3f, \"non2xx\": %d, \"errors\": %d, " ..
    "\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""

LIVEZ_LUA = LUA.replace('return wrk.format("POST", "/wecom/callback?" .. p[1], {["Content-Type"] = "text/xml"}, p[2])',
                        'return wrk.format("GET", "/livez")').replace("wrk.thread:stop()", "n = 0")


# The production recipe's settings; BENCH_GUNICORN="-w 2 --threads 4 -k gthread" tries others.
GUNICORN = os.environ.get("BENCH_GUNICORN", "").split() or ["-c", str(ROOT / "deploy" / "gunicorn.conf.py")]


def payload_file(path: str, count: int, prefix: str) -> None:
    """`count` distinct encrypted add_external_contact callbacks, one `query\\tbody` line each."""
    from urllib.parse import urlencode

    from wecom.crypto import CallbackCrypto
    from wecom.emulator.callbacks import event_xml

    crypto = CallbackCrypto(ENV["WECOM_TOKEN"], ENV["WECOM_ENCODING_AES_KEY"], ENV["WECOM_CORP_ID"])
    now = int(time.time())
    with open(path, "w") as out:
        for i in range(count):
            plain = event_xml(ENV["WECOM_CORP_ID"], now, "change_external_contact", "add_external_contact",
                              [("UserID", f"staff{i % 50}"), ("ExternalUserID", f"wm{prefix}{i:012d}AAAAAAAAAAAAA"),
                               ("State", "expo2026")])
            query, body = crypto.encrypt_envelope(plain, timestamp=now)
            out.write(urlencode(query) + "\t" + _text(body).replace("\n", "") + "\n")


def _text(body: str | bytes) -> str:
    return body.decode() if isinstance(body, bytes) else body


def wrk(url: str, script: str, args: list[str], seconds: int, threads: int = 2, connections: int = 16) -> dict[str, Any]:
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
                           "-s", script, url, "--", *args], capture_output=True, text=True, check=True)
    found = re.search(r"^JSON (.*)$", done.stdout, re.M)
    if not found:
        raise SystemExit("wrk printed no summary:\n" + done.stdout + done.stderr)
    figures: dict[str, Any] = json.loads(found.group(1))
    figures["rate"] = figures["requests"] / figures["seconds"]
    sent = re.search(r"^SENT (.*)$", done.stdout, re.M)
    # per wrk thread, how many payloads of its slice it took (answered or in flight when wrk stopped)
    figures["sent_per_thread"] = [int(n) for n in sent.group(1).split(",")] if sent and sent.group(1) else []
    return figures


def _ticks(pids: list[int]) -> int:
    """user + system CPU of these processes, in clock ticks (the ones that exited count nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def _pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


class CpuMeter:
    """CPU time per request that gunicorn, PostgreSQL and wrk spent during one wrk run."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        web = [self.server_pid, *_pids(f"gunicorn.*{self.server_pid}"), *self._children()]
        pg = _pids("postgres: ")
        web0, pg0, wrk0 = _ticks(web), _ticks(pg), os.times()
        figures = wrk(*args, **kwargs)
        wrk1 = os.times()
        n = max(1, figures["requests"])
        figures["cpu_us"] = {
            "gunicorn": (_ticks(web) - web0) / self.HZ / n * 1e6,
            "postgres": (_ticks(pg) - pg0) / self.HZ / n * 1e6,
            "wrk": (wrk1.children_user + wrk1.children_system - wrk0.children_user - wrk0.children_system) / n * 1e6,
        }
        return figures

    def _children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.server_pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]


def profile(database_url: str, n: int = 3000) -> dict[str, float]:
    """CPU microseconds per callback of each step of the endpoint, in this process (no HTTP server)."""
    import logging

    from werkzeug.test import EnvironBuilder

    from app import create_app
    from core.db import dispose_engines
    from wecom.crypto import CallbackCrypto
    from wecom.emulator.callbacks import event_xml
    from wecom.service import store_event

    crypto = CallbackCrypto(ENV["WECOM_TOKEN"], ENV["WECOM_ENCODING_AES_KEY"], ENV["WECOM_CORP_ID"])
    now = int(time.time())
    plains = [event_xml(ENV["WECOM_CORP_ID"], now, "change_external_contact", "add_external_contact",
                        [("UserID", "u"), ("ExternalUserID", f"wmPROF{i:010d}"), ("State", "s")]) for i in range(2 * n)]
    envelopes = [crypto.encrypt_envelope(p, timestamp=now) for p in plains]
    app = create_app({**{k: v for k, v in ENV.items() if k.startswith("WECOM_")}, "DATABASE_URL": database_url,
                      "SECRET_KEY": "x", "SCRM_EMBEDDED_WORKER": False})
    logging.getLogger("scrm").handlers.clear()  # the server logs nothing per callback either
    timings: dict[str, float] = {}

    def measure(label: str, fn: Any, items: list[Any]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        for item in items:
            fn(item)
        timings[label + " (CPU)"] = (time.process_time() - cpu) / len(items) * 1e6
        if label.startswith("store"):
            timings[label + " (wall, waiting for the commit)"] = (time.perf_counter() - wall) / len(items) * 1e6

    def serve(environ: dict[str, Any]) -> bytes:
        return b"".join(app(environ, lambda *a: None))

    measure("verify + decrypt + parse envelope and plaintext",
            lambda e: crypto.decrypt(e[0]["msg_signature"], e[0]["timestamp"], e[0]["nonce"], e[1]), envelopes[:n])
    opened = [crypto.decrypt(q["msg_signature"], q["timestamp"], q["nonce"], b) for q, b in envelopes]
    with app.app_context():
        store_event(crypto.corp_id, *opened[0])
        measure("store: one INSERT … ON CONFLICT … RETURNING", lambda o: store_event(crypto.corp_id, *o),
                opened[1:n])
    from urllib.parse import urlencode

    livez = [EnvironBuilder(path="/livez").get_environ() for _ in range(n)]
    callbacks = [EnvironBuilder(path="/wecom/callback?" + urlencode(q), method="POST", data=b,
                                content_type="text/xml").get_environ() for q, b in envelopes[n:]]
    measure("the whole /wecom/callback endpoint (WSGI, no HTTP server)", serve, callbacks)
    measure("Flask around the trivial /livez (WSGI, no HTTP server)", serve, livez)
    dispose_engines(app)
    return timings


def bench_database(kind_wanted: str, seconds: int, rate: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCH_DATABASE_URL"] = "sqlite" if kind_wanted == "sqlite" else \
            os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        db_url, kind, drop = database(tmp)
        env = {**os.environ, **ENV, "DATABASE_URL": db_url, "SCRM_EMBEDDED_WORKER": "0"}
        subprocess.run([PY, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([PY, "-m", "gunicorn", *GUNICORN, "--no-control-socket", "-b", f"127.0.0.1:{port}",
                                   "--log-level", "warning", "app:create_app()"], cwd=ROOT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/livez", server)
            lua, livez_lua, none = f"{tmp}/cb.lua", f"{tmp}/livez.lua", f"{tmp}/none.tsv"
            Path(lua).write_text(LUA)
            Path(livez_lua).write_text(LIVEZ_LUA)
            Path(none).write_text("")
            meter = CpuMeter(server.pid)
            payload_file(f"{tmp}/warm.tsv", 4000, "warm")
            warm = wrk(url, lua, [f"{tmp}/warm.tsv", "2", "0"], 2)  # warm up: connections, prepared statements
            wrk(url, livez_lua, [none, "2", "0"], 2)
            trivial = meter.run(url, livez_lua, [none, "2", "0"], seconds)
            # Each phase of new payloads has its own file, more than it can send: the unbounded one
            # cannot answer faster than the trivial route, the paced one sends `rate` a second.
            payload_file(f"{tmp}/max.tsv", int(trivial["rate"] * seconds * 1.3) + 1000, "max")
            payload_file(f"{tmp}/paced.tsv", int(rate * seconds * 1.2) + 1000, "paced")
            unbounded = meter.run(url, lua, [f"{tmp}/max.tsv", "2", "0"], seconds)
            # exactly the payloads phase 2 sent, again: every one a duplicate
            repeats = sent_lines(f"{tmp}/max.tsv", unbounded["sent_per_thread"], 2)
            Path(f"{tmp}/repeat.tsv").write_text("".join(repeats))
            repeated = meter.run(url, lua, [f"{tmp}/repeat.tsv", "2", "0"], seconds)
            paced = meter.run(url, lua, [f"{tmp}/paced.tsv", "2", str(rate / 2)], seconds, connections=64)
            answered = sum(f["requests"] - f["non2xx"] for f in (unbounded, repeated, paced)) + warm["requests"]
            distinct_sent = sum(sum(f["sent_per_thread"]) for f in (warm, unbounded, paced))
            repeats_sent = sum(repeated["sent_per_thread"])
            database_ = Db(db_url)
            stored = database_.scalar("SELECT count(*) FROM wecom_inbox")
            duplicates = database_.scalar("SELECT coalesce(sum(duplicates), 0) FROM wecom_inbox")
        finally:
            server.terminate()
            server.wait(timeout=20)
        steps = {} if os.environ.get("BENCH_NO_PROFILE") else profile(_fresh(db_url, kind))
        drop()
    # wrk stops with requests in flight: each may or may not have been stored. So the check is a
    # bracket: every answered callback is a row or a counted repeat, and nothing beyond what was sent.
    return {"database": kind, "trivial": trivial, "callback": unbounded, "duplicate": repeated, "paced": paced,
            "ratio": unbounded["rate"] / trivial["rate"], "answered": answered, "distinct_sent": distinct_sent,
            "repeats_sent": repeats_sent, "inbox_rows": stored, "duplicates_counted": duplicates,
            "exact": answered <= stored + duplicates <= distinct_sent + repeats_sent and stored <= distinct_sent
                     and duplicates <= repeats_sent,
            "steps": steps}


def sent_lines(path: str, sent_per_thread: list[int], stride: int) -> list[str]:
    """The lines of a payload file that wrk's threads took (thread i: lines i, i+stride, …, n_i of them)."""
    lines = Path(path).read_text().splitlines(keepends=True)
    return [line for i, n in enumerate(sent_per_thread) for line in lines[i::stride][:n]]


def _fresh(db_url: str, kind: str) -> str:
    """An emptied inbox on the same database for the in-process profile."""
    Db(db_url).execute("DELETE FROM wecom_inbox")
    return db_url


def report(results: list[dict[str, Any]]) -> None:
    print("\n| database | endpoint | load | answers/s | p50 | p99 | errors | CPU/request: gunicorn · PostgreSQL · wrk |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        for name, key, load in (("`/livez` (trivial)", "trivial", "as fast as it answers"),
                                ("`/wecom/callback`", "callback", "as fast as it answers, new payloads"),
                                ("`/wecom/callback`", "duplicate", "as fast as it answers, all repeats"),
                                ("`/wecom/callback`", "paced", "paced at 1,000 new/s (64 connections)")):
            f = r[key]
            cpu = f["cpu_us"]
            print(f"| {r['database']} | {name} | {load} | {f['rate']:,.0f} | {f['p50']:.1f} ms | {f['p99']:.1f} ms "
                  f"| {f['non2xx'] + f['errors']} | {cpu['gunicorn']:.0f} · {cpu['postgres']:.0f} · {cpu['wrk']:.0f} µs |")
    print()
    for r in results:
        paced_ok = r["paced"]["p99"] < 10 and r["paced"]["rate"] >= 950
        print(f"{r['database']}: callback/trivial = {r['ratio']:.2f} (target ≥ 0.5: {'met' if r['ratio'] >= 0.5 else 'MISSED'}); "
              f"paced p99 {r['paced']['p99']:.1f} ms at {r['paced']['rate']:,.0f}/s (target < 10 ms at 1,000/s: "
              f"{'met' if paced_ok else 'MISSED'}); {r['inbox_rows']:,} inbox rows and {r['duplicates_counted']:,} counted "
              f"repeats for {r['answered']:,} callbacks answered ({r['distinct_sent']:,} distinct and "
              f"{r['repeats_sent']:,} repeats sent): {'exactly once' if r['exact'] else 'MISMATCH'}")
        if r["steps"]:
            print(f"  where a callback's time goes on {r['database']} (µs per callback, in-process):")
            for step, us in r["steps"].items():
                print(f"    {step:78} {us:7.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--json", default="")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: the load comes from wrk, not from Python (`apt-get install -y wrk`)")
    results = [bench_database(kind, opts.seconds) for kind in opts.databases.split(",")]
    report(results)
    if opts.json:
        Path(opts.json).write_text(json.dumps({"callbacks": results}, indent=2))
    rows = []
    for r in results:
        db = r["database"]
        rows += [table_row("callback ingest", f"{db}, /livez (trivial, same server)", "answers/s",
                           round(r["trivial"]["rate"]), "/s"),
                 table_row("callback ingest", f"{db}, unique callbacks as fast as answered", "answers/s",
                           round(r["callback"]["rate"]), "/s", "≥ 0.5 × /livez", r["ratio"] >= 0.5),
                 table_row("callback ingest", f"{db}, repeats as fast as answered", "answers/s",
                           round(r["duplicate"]["rate"]), "/s"),
                 table_row("callback ingest", f"{db}, paced at 1,000 unique/s", "p99", round(r["paced"]["p99"], 1), "ms",
                           "< 10 ms", r["paced"]["p99"] < 10 and r["paced"]["rate"] >= 950),
                 table_row("callback ingest", f"{db}, every callback stored once", "exactly once",
                           1 if r["exact"] else 0, "", "yes", r["exact"])]
    emit_rows(rows)
    if not all(r["exact"] for r in results):
        raise SystemExit("the inbox does not hold exactly one row per distinct payload")


if __name__ == "__main__":
    main()
