#!/usr/bin/env python3
"""Channel report benchmark: the attribution report (`channels.reports.report`) on a million follow
relations, on PostgreSQL (and SQLite).

For each database it migrates a fresh database (a temp SQLite file; a throwaway PostgreSQL database created
on BENCH_PG_URL's server and dropped afterwards), bulk-loads the customer base of `bench/segments.py`
(n customers, ~1.2 relations each spread over two years and 7 States, 5% lost, stages) with the loss times
and reasons of `bench/overview.py`, value tiers for half the customers and a channel (with a cost) for
each State, then times the report, p50/p95 over --runs runs: the last 30 days, 365 days, and everything
(two years), each without and with "reached a stage"; and the rebuild of the pre-aggregate the report
reads (`channel_stats`, rebuilt every 5 minutes by the job).

Target: under 500 ms on PostgreSQL at 1,000,000 relations.

    .venv/bin/python bench/channels.py                              # 1M relations on PostgreSQL
    .venv/bin/python bench/channels.py --relations 100000 --databases sqlite,postgresql
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import CORP, SETTINGS, emit_rows  # noqa: E402
from common import row as table_row  # noqa: E402
from overview import shape  # noqa: E402
from segments import NOW, STATES, analyse, fill, percentile  # noqa: E402

# A script named like a package (bench/channels.py) must not stand in for that package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

TARGET_MS = 500
RELATIONS_PER_CUSTOMER = 1.2
ROWS: list[dict[str, object]] = []


def extras(engine: Any) -> None:
    """Value tiers for every other customer, and a channel with a cost for each State."""
    from sqlalchemy import text

    tiers = ("高价值", "潜力", "待唤醒", "流失风险")
    naive = NOW.replace(tzinfo=None)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = replica"))
        case = " ".join(f"WHEN {i} THEN '{t}'" for i, t in enumerate(tiers))
        conn.execute(text(f"INSERT INTO value_tiers (corp_id, customer_id, tier, frequency, monetary, since, computed_at) "
                          f"SELECT corp_id, id, CASE id % 4 {case} END, 0, 0, :at, :at FROM customers WHERE id % 2 = 0"),
                     {"at": naive})
        for i, state in enumerate(s for s in dict.fromkeys(STATES) if s):
            conn.execute(text("INSERT INTO channels (corp_id, name, kind, state, users, multi, skip_verify, routed_users, "
                              "chat_ids, welcome_text, welcome_attachments, tag_ids, cost, status, sync_state, created_by, "
                              "created_at, updated_at) VALUES (:corp, :name, 'contact', :state, '[]', false, true, '[]', "
                              "'[]', '', '[]', '[]', :cost, 'active', 'done', 'bench', :at, :at)"),
                         {"corp": CORP, "name": f"渠道{i}", "state": state, "cost": 1000 * (i + 1), "at": naive})
            conn.execute(text("INSERT INTO channel_labels (corp_id, state, name, updated_at) VALUES (:corp, :state, :name, :at)"),
                         {"corp": CORP, "state": state, "name": f"渠道{i}", "at": naive})
    analyse(engine)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    from core.db import db

    times, result = [], None
    for i in range(runs + 2):
        started = time.perf_counter()
        result = fn()
        elapsed = (time.perf_counter() - started) * 1000
        db.session.rollback()
        if i >= 2:  # warm-up
            times.append(elapsed)
    return statistics.median(times), percentile(times, 95), result


def bench_one(kind: str, relations: int, runs: int, pg_url: str) -> list[str]:
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, func, select, text
    from sqlalchemy.engine import make_url

    from app import create_app

    n = max(1000, round(relations / RELATIONS_PER_CUSTOMER))
    cleanup: Callable[[], None] = lambda: None
    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="bench-channels-")
        url = f"sqlite:///{tmp}/bench.db"

        def cleanup() -> None:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    else:
        base = make_url(pg_url).set(drivername="postgresql+psycopg")
        name = f"bench_channels_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    lines: list[str] = []
    try:
        app = create_app({**SETTINGS, "DATABASE_URL": url})
        app.instance_path = tempfile.mkdtemp(prefix="bench-instance-")
        with app.app_context():
            upgrade()
            from channels.reports import report
            from core.db import db
            from crm.models import FollowRelation
            from tagging.lifecycle.stages import ensure_stages

            engine = db.engine
            print(f"{kind}: filling {n:,} customers …", flush=True)
            fill(engine, n)
            shape(engine, n)
            ensure_stages(CORP)
            db.session.commit()
            extras(engine)
            total = int(db.session.scalar(select(func.count()).select_from(FollowRelation)) or 0)
            case = f"{kind} {total:,} relations"
            lines.append(case)
            print(case, flush=True)
            from channels.reports import refresh_stats

            started = time.perf_counter()
            written = refresh_stats(CORP)
            db.session.commit()
            seconds = time.perf_counter() - started
            lines.append(f"  rebuild of the pre-aggregate (every 5 minutes): {seconds:.1f} s, {written:,} rows")
            print(lines[-1], flush=True)
            ROWS.append(table_row("channels", case, "pre-aggregate rebuild", round(seconds, 1), "s"))
            end = NOW + dt.timedelta(days=1)
            for label, days in (("30 days", 30), ("365 days", 365), ("everything (2 years)", 800)):
                for stage in (None, "成交客户"):
                    start = end - dt.timedelta(days=days)
                    p50, p95, data = timed(lambda: report(CORP, start, end, stage=stage, now=NOW), runs)
                    what = f"{label}{', reached a stage' if stage else ''}"
                    lines.append(f"  {what:40} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                                 f"({data['totals']['added']:,} relations, {len(data['channels'])} channels)")
                    print(lines[-1], flush=True)
                    ROWS.append(table_row("channels", f"{case}, {what}", "report p95", round(p95, 1), "ms",
                                          f"< {TARGET_MS} ms", p95 < TARGET_MS if kind == "postgresql" else None))
            db.session.remove()
            engine.dispose()
    finally:
        cleanup()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relations", type=int, default=1_000_000)
    parser.add_argument("--databases", default="postgresql")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    pg_url = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    summary: list[str] = []
    for kind in args.databases.split(","):
        summary += bench_one(kind.strip(), args.relations, args.runs, pg_url)
    print(f"\nsummary (the channel report; target < {TARGET_MS} ms on PostgreSQL at 1,000,000 relations)")
    print("\n".join(summary))
    emit_rows(ROWS)


if __name__ == "__main__":
    main()
