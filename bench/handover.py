#!/usr/bin/env python3
"""Handover benchmark: a resigned colleague's 10,000 customers handed to three colleagues against the WeCom
emulator over HTTP, from reading the waiting list to every customer final. Reported: the WeCom calls of
each step against the minimum (get_unassigned_list pages of 1,000; ⌈n/100⌉ transfer calls; per
(handover, takeover) pair ⌈its customers/1,000⌉ transfer_result pages) and the local time of each step
with the time spent waiting for WeCom taken out.

    .venv/bin/python bench/handover.py                                 # SQLite, 10,000 customers
    .venv/bin/python bench/handover.py --database postgresql --customers 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import CORP, SETTINGS, emit_rows  # noqa: E402
from common import row as table_row  # noqa: E402

# Named like the package it measures: only the project's root stays on the path (see bench/campaigns.py).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TAKEOVERS = ["zhangsan", "lisi", "wangwu"]
UNASSIGNED = "/cgi-bin/externalcontact/get_unassigned_list"
SEND = "/cgi-bin/externalcontact/resigned/transfer_customer"
RESULT = "/cgi-bin/externalcontact/resigned/transfer_result"


def database(kind: str, pg_url: str) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-handover-")
        return f"sqlite:///{folder}/bench.db", lambda: [p.unlink() for p in Path(folder).iterdir()] and None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(pg_url).set(drivername="postgresql+psycopg")
    name = f"bench_handover_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


class WeComTimer:
    """Time spent inside WeCom calls (the emulator's answer included), to take it out of the local time."""

    def __init__(self) -> None:
        from wecom.client import WeComClient

        self.seconds = 0.0
        real = WeComClient._send
        timer = self

        def timed(client: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(client, *args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - started

        WeComClient._send = timed  # type: ignore[method-assign]


def seed(emu: Any, n: int) -> list[str]:
    """The same corp in the emulator: 老王 with n customers (and three colleagues), then 老王 resigns."""
    from wecom.emulator.state import Customer as EmuCustomer

    for userid, name in [("laowang", "老王"), ("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")]:
        emu.act.add_staff(userid, name)
    st = emu.state
    exts = [f"wm{i:08d}BENCHAAAAAAAAAAAAAAA" for i in range(n)]
    with st.lock:
        now = emu.clock.now()
        for i, ext in enumerate(exts):
            customer = EmuCustomer(ext, f"客户{i:05d}")
            st.customers[ext] = customer
            st.add_relation("laowang", customer, now - 86400 * 30)
    emu.act.staff_resigns("laowang")
    return exts


def load_local(exts: list[str]) -> None:
    """The local copy a sync would leave: staff, customers, 老王's relations."""
    from sqlalchemy import insert, select

    from core.db import db, utcnow
    from crm.models import Customer, FollowRelation, Staff
    from crm.service import ensure_corp

    ensure_corp(CORP)
    db.session.execute(insert(Staff), [
        {"corp_id": CORP, "userid": u, "name": n, "department_ids": [1], "status": s}
        for u, n, s in [("laowang", "老王", "resigned"), ("zhangsan", "张三", "active"), ("lisi", "李四", "active"),
                        ("wangwu", "王五", "active")]])
    for start in range(0, len(exts), 5000):
        db.session.execute(insert(Customer), [{"corp_id": CORP, "external_userid": e, "name": e[:10]}
                                              for e in exts[start:start + 5000]])
    ids = list(db.session.scalars(select(Customer.id).where(Customer.corp_id == CORP)))
    added = utcnow() - dt.timedelta(days=30)
    for start in range(0, len(ids), 5000):
        db.session.execute(insert(FollowRelation), [
            {"corp_id": CORP, "customer_id": c, "userid": "laowang", "status": "active", "added_at": added}
            for c in ids[start:start + 5000]])
    db.session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"),
                        default="postgresql" if os.environ.get("BENCH_DATABASE_URL", "").startswith("postgres")
                        else "sqlite")
    args = parser.parse_args()
    n = args.customers
    url, drop = database(args.database, os.environ.get("BENCH_PG_URL") or DEFAULT_PG)
    from flask_migrate import upgrade

    from app import create_app
    from wecom.emulator import Emulator

    emu = Emulator(corp_id=CORP, contact_secret=SETTINGS["WECOM_CONTACT_SECRET"],
                   agent_id=SETTINGS["WECOM_AGENT_ID"], agent_secret=SETTINGS["WECOM_AGENT_SECRET"],
                   token=SETTINGS["WECOM_TOKEN"], encoding_aes_key=SETTINGS["WECOM_ENCODING_AES_KEY"],
                   callback_url=None, seed=None).start(host="127.0.0.1", port=0)
    app = create_app({**SETTINGS, "DATABASE_URL": url, "WECOM_API_BASE": emu.url})
    app.instance_path = tempfile.mkdtemp(prefix="bench-instance-")
    timer = WeComTimer()
    steps: list[tuple[str, float, float, dict[str, int]]] = []
    try:
        with app.app_context():
            upgrade()
            exts = seed(emu, n)
            load_local(exts)
            from crm.worker import Worker, drain
            from handover import service
            from handover.following import poll_due
            from handover.models import HandoverCustomer
            from handover.waiting import refresh_waiting
            from identity.service import Principal
            from core.db import db, utcnow
            from sqlalchemy import func, select
            from wecom.client import contact_client

            def step(name: str, work: Callable[[], Any]) -> None:
                before_calls = {p: emu.call_count(p) for p in (UNASSIGNED, SEND, RESULT)}
                wecom_before, started = timer.seconds, time.perf_counter()
                work()
                total = time.perf_counter() - started
                wecom = timer.seconds - wecom_before
                calls = {p: emu.call_count(p) - before_calls[p] for p in before_calls}
                steps.append((name, total, total - wecom, calls))
                print(f"{name:<34} {total:7.2f} s  local {total - wecom:6.2f} s  "
                      + "  ".join(f"{p.rsplit('/', 1)[1]}={c}" for p, c in calls.items() if c), flush=True)

            admin = Principal(corp_id=CORP, role="admin", userid="zhangsan", via="session", name="bench")
            step("read the waiting list", lambda: (refresh_waiting(CORP, contact_client()), db.session.commit()))
            body = {"kind": "resigned", "handover_userid": "laowang", "takeover_userids": TAKEOVERS,
                    "distribution": "even", "group_chats": False}
            step("preview", lambda: service.preview(admin, body))
            step("start the job (write it)", lambda: (service.create_job(admin, body), db.session.commit()))
            step("send (the worker)", lambda: drain(app, worker=Worker(app, name="bench"), timeout=3600))
            emu.clock.advance(86400 + 60)
            # a day on WeCom's clock outlives the access token: renew it first, or the first page is asked
            # twice (42001, then again with a fresh token), which only the clock jump causes
            contact_client().get_follow_user_list()
            step("follow to the end (poll + apply)",
                 lambda: poll_due(CORP, utcnow(), contact_client(), force=True))
            final = Counter(db.session.scalars(select(HandoverCustomer.status)))
            pairs = Counter(db.session.scalars(select(HandoverCustomer.takeover_userid)))
            open_ = db.session.scalar(select(func.count()).select_from(HandoverCustomer).where(
                HandoverCustomer.status.in_(("queued", "waiting"))))
    finally:
        from core.db import dispose_engines

        emu.stop()
        dispose_engines(app)
        drop()

    sends = sum(s[3][SEND] for s in steps)
    pages = sum(s[3][RESULT] for s in steps)
    unassigned = sum(s[3][UNASSIGNED] for s in steps)
    min_sends = math.ceil(n / 100)
    min_pages = sum(math.ceil(c / 1000) for c in pairs.values())
    min_unassigned = max(1, math.ceil(n / 1000))
    local = sum(s[2] for s in steps)
    print(f"\n{n:,} customers to {len(TAKEOVERS)} colleagues on {args.database} ({dict(pairs)}): "
          f"final {dict(final)}, open {open_}")
    print(f"transfer calls {sends} (minimum {min_sends}), transfer_result pages {pages} (minimum {min_pages}), "
          f"get_unassigned_list pages {unassigned} (minimum {min_unassigned})")
    print(f"local time without WeCom's latency {local:.2f} s; with it {sum(s[1] for s in steps):.2f} s")
    case = f"{n:,} customers, {args.database}"
    emit_rows([
        table_row("handover", case, "transfer calls", sends, "calls", f"= {min_sends} (⌈n/100⌉)", sends == min_sends),
        table_row("handover", case, "transfer_result pages", pages, "calls", f"= {min_pages}", pages == min_pages),
        table_row("handover", case, "get_unassigned_list pages", unassigned, "calls", f"= {min_unassigned}",
                  unassigned == min_unassigned),
        table_row("handover", case, "local time (WeCom excluded)", round(local, 2), "s", "", None),
        table_row("handover", case, "customers final", n - int(open_ or 0), "customers", f"= {n:,}",
                  not open_ and final.get("done", 0) == n),
    ])
    return 0 if sends == min_sends and pages == min_pages and not open_ else 1


if __name__ == "__main__":
    sys.exit(main())
