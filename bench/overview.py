#!/usr/bin/env python3
"""Overview benchmark: each query of the console's overview (概览) on a million customers, and the
refresh that keeps its pre-aggregates, on PostgreSQL (and SQLite).

For each database and size it migrates a fresh database (a temp SQLite file; a throwaway PostgreSQL
database created on BENCH_PG_URL's server and dropped afterwards), bulk-loads the customer base of
`bench/segments.py` (n customers, n/500 staff in 20 departments, ~1.2 relations and ~3 tags per customer,
5% of relations lost over two years, follow-ups for a third of the customers spread over the staff,
stages), then times:

- the refresh: a full rebuild (what the nightly job and the first run do) and an incremental one after
  a day's worth of new relations (what the worker does every five minutes);
- every query the overview page makes (the API makes the same), p50/p95 over --runs runs, for an admin
  without filters, a department, a channel, both, a manager's team, and a 30-day and a 365-day period;
- the customer list's first page and its count, for comparison.

Target: every overview query under 300 ms on PostgreSQL at 1,000,000 customers.

    .venv/bin/python bench/overview.py                                    # 1M on PostgreSQL
    .venv/bin/python bench/overview.py --sizes 100000 --databases sqlite,postgresql
    BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/overview.py
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
from segments import NOW, analyse, fill, percentile  # noqa: E402

# The bench scripts' folder must not stay on the path: a script named like a package (bench/campaigns.py)
# would stand in for that package when the app imports it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

TODAY = (NOW + dt.timedelta(hours=8)).date()
TARGET_MS = 300
ROWS: list[dict[str, object]] = []  # for `python -m bench`


def shape(engine: Any, n: int) -> None:
    """What the segments corp lacks for an overview: loss times and reasons, follow-ups written by their
    customers' staff. Bulk UPDATEs with the triggers off (the facets do not read these columns)."""
    from sqlalchemy import text

    n_staff = max(10, n // 500)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text("UPDATE follow_relations SET lost_at = added_at + (id % 200) * interval '1 day', "
                              "lost_reason = CASE id % 4 WHEN 0 THEN 'del_follow_user' WHEN 1 THEN 'transferred' "
                              "ELSE 'del_external_contact' END WHERE status = 'lost'"))
            conn.execute(text(f"UPDATE followups SET userid = 'staff' || lpad(((customer_id % {n_staff}) + 1)::text, 5, '0')"))
        else:
            conn.execute(text("UPDATE follow_relations SET lost_at = datetime(added_at, '+' || (id % 200) || ' days'), "
                              "lost_reason = CASE id % 4 WHEN 0 THEN 'del_follow_user' WHEN 1 THEN 'transferred' "
                              "ELSE 'del_external_contact' END WHERE status = 'lost'"))
            conn.execute(text(f"UPDATE followups SET userid = 'staff' || substr('0000' || ((customer_id % {n_staff}) + 1), -5)"))
    analyse(engine)


def add_a_day(engine: Any, n: int) -> int:
    """A day's worth of new customers and relations (0.1% of the corp), as callbacks would add them."""
    from sqlalchemy import text

    with engine.begin() as conn:
        top_c = conn.execute(text("SELECT max(id) FROM customers")).scalar() or 0
        top_r = conn.execute(text("SELECT max(id) FROM follow_relations")).scalar() or 0
        added = max(10, n // 1000)
        moment = NOW - dt.timedelta(hours=3)
        conn.execute(text("INSERT INTO customers (id, corp_id, external_userid, name, type, gender, avatar, position, "
                          "corp_name, corp_full_name, created_at, updated_at) VALUES (:id, :corp, :ext, '新客户', 1, 0, "
                          "'', '', '', '', :at, :at)"),
                     [{"id": top_c + i, "corp": CORP, "ext": f"wmnew{i:08d}", "at": moment.replace(tzinfo=None)}
                      for i in range(1, added + 1)])
        conn.execute(text("INSERT INTO follow_relations (id, corp_id, customer_id, userid, remark, description, "
                          "remark_corp_name, remark_mobiles, added_at, add_way, state, oper_userid, status, created_at) "
                          "VALUES (:id, :corp, :cid, 'staff00002', '', '', '', '[]', :at, 1, 'expo2026', '', 'active', :at)"),
                     [{"id": top_r + i, "corp": CORP, "cid": top_c + i, "at": moment.replace(tzinfo=None)}
                      for i in range(1, added + 1)])
    return added


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


def queries(app: Any, runs: int, case: str) -> list[str]:
    from console.customers import listing
    from console.overview import service
    from identity.service import Principal

    admin = Principal(corp_id=CORP, role="admin", userid=None, via="token", token_name="bench")
    manager = Principal(corp_id=CORP, role="manager", userid="staff00001", via="token", token_name="bench")
    month = ((TODAY - dt.timedelta(days=29)).isoformat(), TODAY.isoformat())
    year = ((TODAY - dt.timedelta(days=364)).isoformat(), TODAY.isoformat())
    cases = [("admin, 30 days", admin, month, None, None), ("admin, 365 days", admin, year, None, None),
             ("department, 30 days", admin, month, 3, None), ("channel, 30 days", admin, month, None, "expo2026"),
             ("department+channel, 365 d", admin, year, 3, "web"), ("manager's team, 30 days", manager, month, None, None)]
    lines = []
    with app.test_request_context():
        for label, who, (start, end), department, channel in cases:
            f = service.filters_for(who, start, end, department, channel)
            for name, fn in (("figures", service.figures), ("growth", service.growth), ("staff", service.staff_table),
                             ("tags", service.tag_groups), ("funnel", service.funnel),
                             ("channel options", service.channel_options)):
                p50, p95, _ = timed(lambda: fn(f), runs)
                lines.append(f"  {label:28} {name:16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
                print(lines[-1], flush=True)
                ROWS.append(table_row("overview", f"{case}, {label}", f"{name} p95", round(p95, 1), "ms",
                                      f"< {TARGET_MS} ms", p95 < TARGET_MS))
            p50, p95, _ = timed(lambda: service.overview(f), max(3, runs // 3))
            lines.append(f"  {label:28} {'whole page':16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
            print(lines[-1], flush=True)
        p50, p95, _ = timed(lambda: service.departments(admin), runs)
        lines.append(f"  {'admin':28} {'departments':16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
        print(lines[-1], flush=True)
        plain = listing.ListParams()
        for label, who in (("admin", admin), ("manager's team", manager)):
            p50, p95, _ = timed(lambda: listing.list_page(who, plain), max(3, runs // 3))
            lines.append(f"  customer list, {label:14} {'first page':16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
            print(lines[-1], flush=True)
            p50, p95, _ = timed(lambda: listing.total(who, plain), max(3, runs // 3))
            lines.append(f"  customer list, {label:14} {'count':16} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
            print(lines[-1], flush=True)
    return lines


def bench_one(kind: str, n: int, runs: int, pg_url: str) -> list[str]:
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app import create_app

    cleanup: Callable[[], None] = lambda: None
    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="bench-overview-")
        url = f"sqlite:///{tmp}/bench.db"

        def cleanup() -> None:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    else:
        base = make_url(pg_url).set(drivername="postgresql+psycopg")
        name = f"bench_overview_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    lines = [f"{kind} {n:,} customers"]
    try:
        app = create_app({**SETTINGS, "DATABASE_URL": url})
        app.instance_path = tempfile.mkdtemp(prefix="bench-instance-")
        with app.app_context():
            upgrade()
            from console.overview.refresh import refresh
            from core.db import db

            engine = db.engine
            print(f"{kind} {n:,}: filling …", flush=True)
            fill(engine, n)
            shape(engine, n)
            started = time.perf_counter()
            stats = refresh(CORP, full=True, now=NOW)
            db.session.commit()
            seconds = time.perf_counter() - started
            lines.append(f"  refresh, full rebuild: {seconds:.1f} s ({stats.daily_rows:,} daily "
                         f"rows, {stats.current_rows:,} current rows, {stats.tag_rows:,} tag rows)")
            print(lines[-1], flush=True)
            ROWS.append(table_row("overview", f"{kind} {n:,}", "refresh, full rebuild", round(seconds, 1), "s"))
            analyse(engine)
            added = add_a_day(engine, n)
            started = time.perf_counter()
            stats = refresh(CORP, now=NOW + dt.timedelta(minutes=5))
            db.session.commit()
            seconds = time.perf_counter() - started
            lines.append(f"  refresh, incremental after {added:,} new relations: {seconds:.1f} s "
                         f"(days {stats.first_day} to {stats.last_day})")
            print(lines[-1], flush=True)
            ROWS.append(table_row("overview", f"{kind} {n:,}", "refresh every 5 minutes", round(seconds, 1), "s"))
            analyse(engine)
            lines += queries(app, runs, f"{kind} {n:,}")
            db.session.remove()
            engine.dispose()
    finally:
        cleanup()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--databases", default="postgresql")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    pg_url = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    report = []
    for kind in args.databases.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            report += bench_one(kind.strip(), n, args.runs, pg_url)
    print("\nsummary (each overview query; target < 300 ms on PostgreSQL at 1,000,000 customers)")
    print("\n".join(report))
    emit_rows(ROWS)


if __name__ == "__main__":
    main()
