"""Run every benchmark, print one table, write JSON: `python -m bench` (from the repository root).

    .venv/bin/python -m bench                    # everything, at the sizes the issues name (about an hour)
    .venv/bin/python -m bench --quick            # smaller sizes (about ten minutes)
    .venv/bin/python -m bench --only callbacks,apply
    .venv/bin/python -m bench --json bench/results/latest.json   (the default)

Each benchmark is a script of this directory run in its own process (so one's memory or crash is
not another's), on its own fresh database; each prints its own report and then one `BENCH-ROWS`
line that this runner collects: a figure, its target, and whether it is met. PostgreSQL is
BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
RELATIONS_PER_CUSTOMER = 1.35  # `--seed N` makes about 1.35 N follow relations

# name: (script and arguments, --quick arguments (None: skipped), extra environment)
BENCHES: dict[str, tuple[list[str], list[str] | None, dict[str, str]]] = {
    "callbacks": (["callbacks.py", "--seconds", "10"], ["callbacks.py", "--seconds", "5"], {}),
    "apply": (["apply.py", "--events", "5000", "--sustain", "20"], ["apply.py", "--events", "2000", "--sustain", "10"],
              {"BENCH_DATABASE_URL": PG}),
    "sync-100k": (["sync.py", "100000"], ["sync.py", "20000"], {"BENCH_DATABASE_URL": PG}),
    "sync-1M": (["sync.py", str(round(1_000_000 / RELATIONS_PER_CUSTOMER))], None, {"BENCH_DATABASE_URL": PG}),
    "sync-1M-sqlite": (["sync.py", str(round(1_000_000 / RELATIONS_PER_CUSTOMER))], None, {"BENCH_DATABASE_URL": ""}),
    "segments": (["segments.py", "--sizes", "1000000", "--databases", "postgresql,sqlite"],
                 ["segments.py", "--sizes", "100000", "--databases", "postgresql", "--runs", "5"],
                 {"BENCH_PG_URL": PG}),
    "sidebar": (["sidebar_profile.py"], ["sidebar_profile.py", "--customers", "100000", "--pages", "5"],
                {"BENCH_DATABASE_URL": PG}),
    "campaigns": (["campaigns.py", "--customers", "1000000"], ["campaigns.py", "--customers", "100000"],
                  {"BENCH_PG_URL": PG}),
    "overview": (["overview.py", "--sizes", "1000000"], ["overview.py", "--sizes", "100000", "--runs", "5"],
                 {"BENCH_PG_URL": PG}),
    "channels": (["channels.py", "--relations", "1000000"], ["channels.py", "--relations", "100000", "--runs", "5"],
                 {"BENCH_PG_URL": PG}),
    "handover": (["handover.py", "--customers", "10000", "--database", "postgresql"],
                 ["handover.py", "--customers", "2000", "--database", "postgresql"], {"BENCH_PG_URL": PG}),
    "faults": (["faults.py", "10000"], ["faults.py", "1000"], {"BENCH_DATABASE_URL": PG}),
}


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    memory = ""
    try:
        found = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory = f"{int(found.group(1)) / 1024 / 1024:.0f} GiB" if found else ""
    except OSError:
        pass
    postgres = subprocess.run(["psql", PG, "-Atc", "SHOW server_version"], capture_output=True, text=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
            "python": platform.python_version(),
            "postgresql": postgres.stdout.strip() if postgres.returncode == 0 else "unreachable",
            "sqlite": __import__("sqlite3").sqlite_version}


def run(name: str, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    print(f"\n=== {name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(BENCH / argv[0]), *argv[1:]], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    rows: list[dict[str, Any]] = []
    tail: list[str] = []
    for line in proc.stdout:
        if line.startswith("BENCH-ROWS "):
            rows += json.loads(line[len("BENCH-ROWS "):])
            continue
        print(line, end="", flush=True)
        tail = (tail + [line.rstrip()])[-40:]
    code = proc.wait()
    return {"argv": argv, "seconds": round(time.monotonic() - started, 1), "returncode": code, "rows": rows,
            "output_tail": tail}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| benchmark | case | figure | value | target | met |", "| --- | --- | --- | ---: | --- | :---: |"]
    for name, result in results.items():
        if result["returncode"] != 0 and not result["rows"]:
            lines.append(f"| {name} | (failed with status {result['returncode']}; see its output) | | | | ✗ |")
        for r in result["rows"]:
            value = r["value"]
            shown = f"{value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
            if r["unit"] == "" and r["target"] == "yes":
                shown = "yes" if value else "no"
            else:
                shown = f"{shown} {r['unit']}".strip()
            met = "" if r["met"] is None else ("✓" if r["met"] else "✗")
            lines.append(f"| {r['benchmark']} | {r['case']} | {r['figure']} | {shown} | {r['target']} | {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; skips the 1M syncs")
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(BENCHES))
    parser.add_argument("--json", default=str(BENCH / "results" / "latest.json"))
    opts = parser.parse_args()
    wanted = [n for n in opts.only.split(",") if n] or list(BENCHES)
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHES)}")
    about = machine()
    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, dict[str, Any]] = {}
    for name in wanted:
        full, quick, env = BENCHES[name]
        argv = quick if opts.quick else full
        if argv is None:
            continue
        results[name] = run(name, argv, env)
    header = (f"Machine: {about['cpu']}, {about['cores']} cores, {about['memory']}; {about['os']}; Python "
              f"{about['python']}, PostgreSQL {about['postgresql']}, SQLite {about['sqlite']}. "
              f"Run {started:%Y-%m-%d %H:%M} UTC{' (--quick)' if opts.quick else ''}.")
    print("\n" + header + "\n\n" + table(results))
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": about, "started": started.isoformat(), "quick": opts.quick,
                               "results": results}, indent=2, ensure_ascii=False))
    print(f"\nwritten to {out}")
    failed = [n for n, r in results.items() if r["returncode"] != 0]
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
