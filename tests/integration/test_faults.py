"""Exactly once under faults, the CI size of `bench/faults.py`: unique callbacks through two web
processes and two `flask worker` processes on PostgreSQL, one worker killed with SIGKILL and restarted,
WeCom answering 5xx and 45009 part of the time (sometimes after acting). The script checks every
event applied once, every outbox command done once (or settled without a second delivery), nothing
left pending, and exits non-zero otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CALLBACKS = 400


@pytest.mark.timeout(900)
def test_exactly_once_under_faults_on_postgres(tmp_path: Path) -> None:
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgres"):
        if os.environ.get("SCRM_REQUIRE_POSTGRES"):
            pytest.fail("TEST_DATABASE_URL must point at PostgreSQL")
        pytest.skip("the fault run drives the PostgreSQL deployment (this run is on SQLite)")
    env = {**os.environ, "BENCH_DATABASE_URL": base, "BENCH_JSON": str(tmp_path / "faults.json")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "faults.py"), str(CALLBACKS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "exactly once under faults: yes" in done.stdout
