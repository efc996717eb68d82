#!/usr/bin/env python3
"""Campaign planning benchmark: plan a mass message to 1,000,000 customers on PostgreSQL (or SQLite) and
report the time and the peak memory of the process that plans it. Target: under 30 s and 300 MB.

It migrates a throwaway database (created on BENCH_PG_URL's server and dropped afterwards; a temp file for
SQLite), fills the customer base with `bench/segments.py`'s loader (~1.2 relations, ~3 tags per customer,
follow-ups for a third; facets rebuilt), adds what the receive quota reads (an earlier campaign delivered
today to a tenth of the customers, a member's own mass message to 10,000), then runs the planning in a
CHILD process so its peak RSS is its own: the audience resolved at send time, a sender per customer, the
exclusions (lost, quota, no active sender), in chunks of 100,000 customer ids, then the tasks (≤10,000 per
call) and one outbox command each, as the send job does. Printed: each step's time, the rows written, the
child's peak RSS and, for comparison, the RSS of the same child before planning (Python, Flask, the app).

    BENCH_PG_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/campaigns.py
    .venv/bin/python bench/campaigns.py --customers 200000 --database sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import CORP, SETTINGS, emit_rows  # noqa: E402
from common import row as table_row  # noqa: E402
from segments import analyse, fill  # noqa: E402

# This script is named like the package it measures: with bench/ on the path, `import campaigns` would find
# the script. Only the project's root stays on the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
FILTER: dict[str, Any] = {"all": []}  # everyone still followed: the widest campaign a marketer can send


def rss_mb() -> float:
    """This process's peak resident set size so far, in MB: the high-water mark of its address space
    (/proc/self/status VmHWM; `ru_maxrss` would carry the parent's peak over the exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(url: str) -> Any:
    from app import create_app

    app = create_app({**SETTINGS, "DATABASE_URL": url})
    app.instance_path = tempfile.mkdtemp(prefix="bench-instance-")
    return app


def prepare(url: str, n: int) -> None:
    """Migrate, fill the customer base, add what the quota counts and the campaign to plan."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select

    app = make_app(url)
    with app.app_context():
        upgrade()
        from campaigns.models import Campaign, CampaignRecipient, ForeignReceipt
        from core.db import db, utcnow
        from crm.models import Customer

        print(f"filling {n:,} customers …", flush=True)
        fill(db.engine, n)
        now = utcnow()
        earlier = Campaign(corp_id=CORP, name="今天早些时候的群发", send_at=now - dt.timedelta(hours=3), created_by="bench",
                           status="following", planned_at=now - dt.timedelta(hours=3), progress={}, counts={})
        db.session.add(earlier)
        db.session.flush()
        ids = list(db.session.execute(select(Customer.id, Customer.external_userid).where(
            Customer.corp_id == CORP, Customer.id % 10 == 0)).tuples())
        others = list(db.session.execute(select(Customer.id, Customer.external_userid).where(
            Customer.corp_id == CORP, Customer.id % 10 == 5).limit(10_000)).tuples())
        for i in range(0, len(ids), 20_000):
            db.session.execute(insert(CampaignRecipient), [
                {"corp_id": CORP, "campaign_id": earlier.id, "target_pk": pk, "target": ext, "sender_userid": "staff00001",
                 "status": "delivered", "sent_at": now - dt.timedelta(hours=2)} for pk, ext in ids[i:i + 20_000]])
        db.session.execute(insert(ForeignReceipt), [
            {"corp_id": CORP, "msgid": f"msgmember{pk % 50}", "chat_type": "single", "target": ext, "target_pk": pk,
             "sent_at": now - dt.timedelta(hours=1)} for pk, ext in others])
        db.session.add(Campaign(corp_id=CORP, name="百万客户群发", filter=FILTER, text="年终回馈，到店有礼", send_at=now,
                                created_by="bench", status="scheduled", progress={}, counts={}, plan_cursor=0))
        db.session.commit()
        analyse(db.engine)
        db.session.remove()
        db.engine.dispose()


def reset(url: str) -> None:
    """Put a kept database back as `prepare` left it: the campaign scheduled, nothing planned or queued."""
    from sqlalchemy import delete, update

    app = make_app(url)
    with app.app_context():
        from campaigns.models import Campaign, CampaignRecipient, CampaignTask
        from core.db import db
        from wecom.models import OutboxCommand

        campaign_id = db.session.scalar(select_campaign())
        db.session.execute(delete(OutboxCommand))
        db.session.execute(delete(CampaignTask).where(CampaignTask.campaign_id == campaign_id))
        db.session.execute(delete(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id))
        db.session.execute(update(Campaign).where(Campaign.id == campaign_id).values(
            status="scheduled", plan_cursor=0, progress={}, counts={}, planned_at=None, error=None))
        db.session.commit()
        analyse_kept(db.engine)


def select_campaign() -> Any:
    from sqlalchemy import select

    from campaigns.models import Campaign

    return select(Campaign.id).where(Campaign.name == "百万客户群发")


def analyse_kept(engine: Any) -> None:
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE campaign_recipients"))


def plan_child(url: str) -> None:
    """In the child: plan the scheduled campaign as the send job does; print the figures as JSON."""
    from sqlalchemy import func, select

    app = make_app(url)
    with app.app_context():
        from campaigns.models import Campaign, CampaignRecipient, CampaignTask
        from campaigns.planning import audience_of, recipient_counts
        from campaigns.sending import plan, send
        from core.db import db, utcnow
        from wecom.models import OutboxCommand

        campaign_id = db.session.scalar(select_campaign())
        db.session.scalar(select(func.count()).select_from(Campaign))  # connect, warm the mappers
        before = rss_mb()
        now = utcnow()
        started = time.perf_counter()
        campaign = db.session.get(Campaign, campaign_id)
        campaign.status, campaign.planning_started_at = "planning", now
        db.session.commit()
        audience = audience_of(campaign, now)
        plan(campaign_id, audience)
        planned = time.perf_counter()
        send(campaign_id, audience, now, client=None)  # type: ignore[arg-type]  (no attachments: WeCom unused)
        done = time.perf_counter()
        counts = recipient_counts(campaign_id)
        print(json.dumps({
            "plan_seconds": round(planned - started, 1), "tasks_and_commands_seconds": round(done - planned, 1),
            "total_seconds": round(done - started, 1), "rss_before_mb": round(before), "peak_rss_mb": round(rss_mb()),
            "recipients": db.session.scalar(select(func.count()).select_from(CampaignRecipient)
                                            .where(CampaignRecipient.campaign_id == campaign_id)),
            "planned": counts.get("planned", 0), "excluded": counts["excluded"],
            "tasks": db.session.scalar(select(func.count()).select_from(CampaignTask)),
            "commands": db.session.scalar(select(func.count()).select_from(OutboxCommand)
                                          .where(OutboxCommand.kind == "campaign_send")),
            "status": db.session.get(Campaign, campaign_id).status}))


def database(kind: str, pg_url: str) -> tuple[str, Any]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-campaigns-")
        return f"sqlite:///{folder}/bench.db", lambda: [p.unlink() for p in Path(folder).iterdir()]
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(pg_url).set(drivername="postgresql+psycopg")
    name = f"bench_campaigns_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed) to plan again")
    parser.add_argument("--reuse", metavar="URL", help="plan again in a database kept by --keep (reset first)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        plan_child(args.child)
        return
    if args.reuse:
        url, drop = args.reuse, (lambda: None)
        reset(url)
    else:
        url, drop = database(args.database, os.environ.get("BENCH_PG_URL", DEFAULT_PG))
        if args.keep:
            print(f"keeping {url}", flush=True)
            drop = (lambda: None)
    try:
        if not args.reuse:
            prepare(url, args.customers)
        print("planning in a child process …", flush=True)
        child = subprocess.run([sys.executable, __file__, "--child", url], capture_output=True, text=True,
                               env={**os.environ, "LOG_LEVEL": "WARNING"})
        if child.returncode != 0:
            sys.exit(child.stderr[-3000:])
        result = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        drop()
    print(f"\n{args.database} {args.customers:,} customers, filter {json.dumps(FILTER)}")
    print(f"  recipients written   {result['recipients']:>10,}  (planned {result['planned']:,}; excluded "
          + ", ".join(f"{k} {v:,}" for k, v in result["excluded"].items()) + ")")
    print(f"  tasks / commands     {result['tasks']:>10,} / {result['commands']:,}  (status {result['status']})")
    print(f"  planning             {result['plan_seconds']:>10.1f} s  (audience, senders, exclusions, chunked)")
    print(f"  tasks and commands   {result['tasks_and_commands_seconds']:>10.1f} s")
    print(f"  total                {result['total_seconds']:>10.1f} s   target < 30 s")
    print(f"  peak RSS             {result['peak_rss_mb']:>10,} MB  (the same process before planning: "
          f"{result['rss_before_mb']} MB)   target < 300 MB")
    case = f"{'PostgreSQL' if args.database == 'postgresql' else 'SQLite'}, {args.customers:,} customers"
    big = args.customers >= 1_000_000
    emit_rows([table_row("campaign planning", case, "time", round(result["total_seconds"], 1), "s",
                         "< 30 s" if big else "", result["total_seconds"] < 30 if big else None),
               table_row("campaign planning", case, "peak memory", result["peak_rss_mb"], "MB", "< 300 MB",
                         result["peak_rss_mb"] < 300)])


if __name__ == "__main__":
    main()
