"""Restarting the demo never invents lost customers: `python3 dev.py demo` run twice (the real command:
the emulator seeded as the demo corp, migrate, full sync, the demo's activity, the server, a few
customers leaving and arriving by callback) leaves the same number of lost customers.

The emulator forgets everything when it stops and seeds a new corp; the demo therefore starts its
database afresh too. Were the old database kept, the second sync would mark the customers who arrived
during the first demo (not in the new seed) as lost."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Two full demo set-ups (emulator, migrate, sync, activity) in subprocesses: more than the default 120 s on a
# busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(db: Path) -> None:
    env = {**os.environ, "DEMO_DB": str(db), "DEMO_PORT": str(_free_port()), "EMULATOR_PORT": str(_free_port()),
           "DEMO_SETUP_ONLY": "1"}
    env.pop("TEST_DATABASE_URL", None)
    done = subprocess.run([sys.executable, str(ROOT / "dev.py"), "demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _lost(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        lost = conn.execute("SELECT count(*) FROM follow_relations WHERE status != 'active'").fetchone()[0]
        gone = conn.execute("SELECT count(*) FROM customers c WHERE NOT EXISTS (SELECT 1 FROM follow_relations r "
                            "WHERE r.customer_id = c.id AND r.status = 'active')").fetchone()[0]
    return int(lost), int(gone)


def test_restarting_the_demo_twice_leaves_the_lost_customers_unchanged(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import dev

    db = tmp_path / "demo.db"
    _demo(db)
    first = _lost(db)
    assert first[0] == len(dev.DEMO_LOSSES)  # the demo's own customers who left, nobody else
    _demo(db)
    assert _lost(db) == first
    _demo(db)
    assert _lost(db) == first
