#!/usr/bin/env python3
"""Segment preview benchmark: `tagging.segments.service.preview` (count + 10-customer sample) on 100,000 and
1,000,000 customers with ~3 tag assignments each, on SQLite and PostgreSQL.

For each database and size it migrates a fresh database (a temp SQLite file; a throwaway PostgreSQL
database created on BENCH_PG_URL's server and dropped afterwards), bulk-inserts the customer base
(executemany on SQLite; on PostgreSQL COPY with the triggers off, then `tagging.segments.facets.rebuild`, the
documented way to bulk-load), analyses it, then times
several realistic filters (p50/p95 over --runs runs after a warm-up). On PostgreSQL it then times the
same filters answered from the relation tables instead of `customer_facets` (what SQLite does, and
what PostgreSQL did before the facets), so the table's effect is visible.
Target: p95 < 200 ms on PostgreSQL at 1,000,000 customers.

    .venv/bin/python bench/segments.py                                   # both sizes, both databases
    .venv/bin/python bench/segments.py --sizes 100000 --databases sqlite
    BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/segments.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)
from common import CORP, SETTINGS, TAG_GROUPS, emit_rows  # noqa: E402
from common import row as table_row  # noqa: E402

ROWS: list[dict[str, object]] = []
CHUNK = 50_000
STAGES = ["潜在客户", "意向客户", "成交客户", "忠诚客户", "流失客户", None]
STATES = ["", "", "expo2026", "web", "ad_baidu", "poster", "referral"]
NOW = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def chunks(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Loader:
    """Bulk insert: COPY on PostgreSQL, executemany of a plain INSERT on SQLite (naive UTC datetimes)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"

    def load(self, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
        total = 0
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.pg:
                # a bulk load: no per-statement facet refresh (and no FK checks); facets are rebuilt after
                cur.execute("SET session_replication_role = replica")
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        total += 1
            else:
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                for batch in chunks(rows):
                    cur.executemany(sql, [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime)
                                                else v for v in r) for r in batch])
                    total += len(batch)
            raw.commit()
        finally:
            raw.close()
        return total


def fill(engine: Any, n: int, seed: int = 7) -> dict[str, Any]:
    """The customer base: n customers, n/500 staff, ~1.2 relations and ~3 tag assignments per customer,
    follow-ups for a third, page views for a fifth. Returns tag ids by name and some staff ids."""
    rng = random.Random(seed)
    loader = Loader(engine)
    naive_now = NOW.replace(tzinfo=None)
    n_staff = max(10, n // 500)
    loader.load("corps", ["corp_id", "name", "created_at"], iter([(CORP, "bench", naive_now)]))
    loader.load("staff", ["id", "corp_id", "userid", "name", "department_ids", "status", "created_at"],
                ((i, CORP, f"staff{i:05d}", f"员工{i}", f"[{i % 20}]", "active", naive_now)
                 for i in range(1, n_staff + 1)))
    tag_ids: dict[str, str] = {}
    groups, tags = [], []
    tag_pk = 0
    group_tags: list[list[int]] = []
    for g, (gname, names) in enumerate(TAG_GROUPS.items(), start=1):
        groups.append((g, CORP, f"etg{g}", gname, 0))
        pks = []
        for name in names:
            tag_pk += 1
            tags.append((tag_pk, CORP, f"et{tag_pk:04d}", g, name, 0))
            tag_ids[name] = f"et{tag_pk:04d}"
            pks.append(tag_pk)
        group_tags.append(pks)
    loader.load("tag_groups", ["id", "corp_id", "group_id", "name", '"order"'], iter(groups))
    loader.load("tags", ["id", "corp_id", "tag_id", "group_pk", "name", '"order"'], iter(tags))

    start = time.perf_counter()
    loader.load("customers", ["id", "corp_id", "external_userid", "name", "type", "gender", "avatar", "position",
                              "corp_name", "corp_full_name", "stage", "created_at", "updated_at"],
                ((i, CORP, f"wm{i:08d}", f"客户{i}", 1, i % 3, "", "", "", "", STAGES[rng.randrange(len(STAGES))],
                  naive_now, naive_now) for i in range(1, n + 1)))
    relations: list[tuple[int, int, int]] = []  # (relation id, customer id, active?)

    def relation_rows() -> Iterator[tuple[Any, ...]]:
        rid = 0
        for cid in range(1, n + 1):
            owner = rng.randrange(n_staff)
            for k in range(2 if rng.random() < 0.2 else 1):
                rid += 1
                active = rng.random() >= 0.05
                relations.append((rid, cid, active))
                added = naive_now - dt.timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
                yield (rid, CORP, cid, f"staff{(owner + k) % n_staff + 1:05d}", "", "", "", "[]", added, 1,
                       STATES[rng.randrange(len(STATES))], "", "active" if active else "lost", naive_now)

    loader.load("follow_relations", ["id", "corp_id", "customer_id", "userid", "remark", "description",
                                     "remark_corp_name", "remark_mobiles", "added_at", "add_way", "state",
                                     "oper_userid", "status", "created_at"], relation_rows())

    def assignment_rows() -> Iterator[tuple[Any, ...]]:
        aid = 0
        for rid, cid, _ in relations:
            # ~3 tags per customer: level on most relations, one industry, sometimes channel and product
            picks = []
            if rng.random() < 0.9:
                picks.append(rng.choice(group_tags[0]))
            picks.append(rng.choice(group_tags[1]))
            if rng.random() < 0.6:
                picks.append(rng.choice(group_tags[2]))
            if rng.random() < 0.4:
                picks.append(rng.choice(group_tags[3]))
            for pk in picks:
                aid += 1
                yield (aid, CORP, rid, pk, cid, "wecom", naive_now)

    assignments = loader.load("tag_assignments", ["id", "corp_id", "relation_id", "tag_pk", "customer_id", "source",
                                                  "created_at"], assignment_rows())
    relations.clear()
    loader.load("followups", ["id", "corp_id", "customer_id", "userid", "content", "created_at"],
                ((i, CORP, cid, "staff00001", "跟进", naive_now - dt.timedelta(days=rng.randrange(120)))
                 for i, cid in enumerate((c for c in range(1, n + 1) if c % 3 == 0), start=1)))
    loader.load("behavior_events", ["id", "corp_id", "event_id", "customer_id", "type", "at", "path", "properties",
                                    "source", "received_at"],
                ((i, CORP, f"ev{i}", rng.randrange(1, n + 1), "page_view",
                  naive_now - dt.timedelta(hours=rng.randrange(24 * 30)),
                  f"/products/{rng.choice('ABCDE')}/{rng.randrange(5)}", "{}", "bench", naive_now)
                 for i in range(1, n // 2 + 1)))
    seconds = time.perf_counter() - start
    if engine.dialect.name == "postgresql":
        from core.db import db
        from tagging.segments import facets

        started = time.perf_counter()
        rebuilt = facets.rebuild(CORP)
        db.session.commit()
        print(f"  facets rebuilt for {rebuilt:,} customers in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.begin() as conn:
        from sqlalchemy import text

        if engine.dialect.name == "postgresql":
            for table in ("customers", "follow_relations", "tag_assignments", "followups", "behavior_events",
                          "staff", "tags", "tag_groups"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    analyse(engine)
    print(f"  filled {n:,} customers, {assignments:,} tag assignments in {seconds:.0f} s", flush=True)
    return {"tags": tag_ids, "staff": [f"staff{i:05d}" for i in range(1, 4)]}


def analyse(engine: Any) -> None:
    from sqlalchemy import text

    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # statistics, and the visibility map for index-only scans
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def filters(made: dict[str, Any]) -> dict[str, Any]:
    t = made["tags"]
    return {
        "single tag": {"tag": t["A类"]},
        "wecom_tags 2 groups": {"wecom_tags": [t["A类"], t["B类"], t["教育"], t["金融"]]},
        "any/not": {"all": [{"any": [{"tag": t["展会"]}, {"tag": t["官网"]}]}, {"not": {"tag": t["C类"]}}]},
        "stage + no_followup": {"all": [{"stage": ["意向客户", "成交客户"]}, {"no_followup_days": 30}]},
        "event 2 views/7 days": {"event": {"type": "page_view", "path_prefix": "/products/A", "min_count": 2,
                                           "within_days": 7}},
        "owners + tag": {"all": [{"followed_by": made["staff"]}, {"tag": t["B类"]}]},
        "manager scope, tag": {"tag": t["B类"]},
    }


def time_filters(app: Any, made: dict[str, Any], runs: int) -> dict[str, tuple[float, float, int]]:
    from identity.service import Principal
    from core.db import db
    from tagging.segments.service import preview

    admin = Principal(corp_id=CORP, role="admin", userid=None, via="token", token_name="bench")
    # a manager sees the customers of the staff sharing his department (1 in 20 of the staff)
    manager = Principal(corp_id=CORP, role="manager", userid="staff00001", via="token", token_name="bench")
    results: dict[str, tuple[float, float, int]] = {}
    with app.test_request_context():
        for name, tree in filters(made).items():
            principal = manager if name.startswith("manager") else admin
            times = []
            count = 0
            for i in range(runs + 2):
                started = time.perf_counter()
                count = preview(principal, tree)["count"]
                elapsed = (time.perf_counter() - started) * 1000
                db.session.rollback()
                if i >= 2:  # warm-up
                    times.append(elapsed)
            results[name] = (statistics.median(times), percentile(times, 95), count)
    return results


def bench_one(kind: str, n: int, runs: int, pg_url: str) -> list[str]:
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app import create_app

    cleanup: Callable[[], None] = lambda: None
    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="bench-segments-")
        url = f"sqlite:///{tmp}/bench.db"

        def cleanup() -> None:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    else:
        base = make_url(pg_url).set(drivername="postgresql+psycopg")
        name = f"bench_segments_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    lines = []
    try:
        app = create_app({**SETTINGS, "DATABASE_URL": url})
        app.instance_path = tempfile.mkdtemp(prefix="bench-instance-")
        with app.app_context():
            upgrade()
            from core.db import db

            engine = db.engine
            print(f"{kind} {n:,}: filling …", flush=True)
            made = fill(engine, n)
            if kind == "postgresql":
                from tagging.segments import facets

                check = facets.check(CORP)
                print(f"  facets: {check['customers']:,} rows, {check['differing']} differing from the tables",
                      flush=True)
                db.session.rollback()
            after = time_filters(app, made, runs)
            before: dict[str, tuple[float, float, int]] = {}
            if kind == "postgresql":
                import tagging.segments.service

                tagging.segments.service.facets_enabled = lambda: False  # type: ignore[assignment]
                try:
                    before = time_filters(app, made, max(3, runs // 3))
                finally:
                    tagging.segments.service.facets_enabled = facets.enabled  # type: ignore[assignment]
            for label, (p50, p95, count) in after.items():
                ROWS.append(table_row("segment preview", f"{'PostgreSQL' if kind == 'postgresql' else 'SQLite'}, "
                                f"{n:,} customers, {label}", "p95", round(p95, 1), "ms",
                                "< 200 ms" if kind == "postgresql" and n >= 1_000_000 else "",
                                p95 < 200 if kind == "postgresql" and n >= 1_000_000 else None))
                line = f"{kind:8} {n:>9,}  {label:24} count {count:>8,}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
                if label in before:
                    b50, b95, bcount = before[label]
                    assert bcount == count, (label, bcount, count)
                    line += f"   (from the relation tables: p50 {b50:7.1f}, p95 {b95:7.1f})"
                print(line, flush=True)
                lines.append(line)
            db.session.remove()
            engine.dispose()
    finally:
        cleanup()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    pg_url = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    report = []
    for kind in args.databases.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            report += bench_one(kind.strip(), n, args.runs, pg_url)
    print("\nsummary (preview = count + 10-customer sample; admin scope unless named)")
    print("\n".join(report))
    emit_rows(ROWS)


if __name__ == "__main__":
    main()
