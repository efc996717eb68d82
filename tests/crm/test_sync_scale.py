"""The full sync into fresh PostgreSQL tables that were never analysed (autovacuum off, a first sync)
keeps a linear rate: no statement of the sync or of the facets triggers may depend on the planner
knowing how big the tables are. (It used to turn quadratic: 10 relations a second and falling.)"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm.sync import FullSync, Progress, local_counts
from tests.crm.test_sync import _client, _emulator
from tests.helpers import TEST_CORP_ID, TEST_SETTINGS

SEED = 4000  # about 5,400 relations, 55 pages


@pytest.fixture()
def fresh_app(tmp_path: Any) -> Iterator[Flask]:
    """An app on a database of its own, created for this test: its tables have no statistics."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgres"):
        if os.environ.get("SCRM_REQUIRE_POSTGRES"):
            pytest.fail("TEST_DATABASE_URL must point at PostgreSQL")
        pytest.skip("the planner's statistics are a PostgreSQL matter (this run is on SQLite)")
    url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"scrm_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    from flask_migrate import upgrade

    from app import create_app
    from core.db import dispose_engines

    application = create_app({**TEST_SETTINGS, "TESTING": True, "SECRET_KEY": "x", "SCRM_EMBEDDED_WORKER": False,
                              "DATABASE_URL": url.set(database=name).render_as_string(hide_password=False)})
    application.instance_path = str(tmp_path)
    try:
        with application.app_context():
            upgrade()
        yield application
    finally:
        dispose_engines(application)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_first_sync_into_never_analysed_tables_keeps_a_linear_rate(fresh_app: Flask) -> None:
    from core.db import db

    emu = _emulator(SEED)
    marks: list[tuple[float, int]] = []

    def progress(p: Progress) -> None:
        marks.append((time.perf_counter(), p.counts.get("rows", 0)))

    try:
        with fresh_app.app_context():
            analysed = db.session.scalar(text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('customers', 'follow_relations', "
                "'tag_assignments') AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"))
            assert analysed == 0
            started = time.perf_counter()
            FullSync(_client(emu), TEST_CORP_ID, progress=progress).run()
            counts = local_counts(TEST_CORP_ID)
            facets = db.session.scalar(text("SELECT count(*) FROM customer_facets"))
    finally:
        emu.stop()
    summary = emu.state.summary()
    assert counts["relations"] == summary["relations"] and facets == summary["customers"]
    pages = [(t, rows) for t, rows in marks if rows]
    total = pages[-1][1]
    tenth = total / 10

    def rate(first_rows: float, last_rows: float) -> float:
        inside = [(t, r) for t, r in [(started, 0), *pages] if first_rows <= r <= last_rows]
        (t0, r0), (t1, r1) = inside[0], inside[-1]
        return (r1 - r0) / max(t1 - t0, 1e-6)

    first, last = rate(0, tenth), rate(total - tenth, total)
    assert last >= first / 2, f"first tenth {first:.0f} rows/s, last tenth {last:.0f} rows/s"
