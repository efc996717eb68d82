#!/usr/bin/env python3
"""Exactly once under faults: unique callbacks through two web processes and two workers while a
worker is killed with SIGKILL and restarted, and WeCom (the emulator) answers 5xx and 45009 part of
the time, sometimes after acting (the answer is lost, not the action). Exits non-zero on failure.

On a fresh database (PostgreSQL by default), with the production recipe's gunicorn settings:

1. a tag group is created in WeCom (its callback brings the tags here) and an admin API token;
2. faults on: `externalcontact/get` 5 % HTTP 502 and 5 % 45009; `send_welcome_msg` 20 % HTTP 503
   after sending; `mark_tag` 10 % 45009 and 5 % HTTP 502 after marking;
3. N customers add a staff member (every 4th with a WelcomeCode); once a third of the events are
   applied, one worker is killed with SIGKILL and started again two seconds later;
4. the API tags every customer (`POST /api/v1/tags/bulk`: one `mark_tag` each, through the outbox);
5. everything settles. Then: every event applied exactly once (one audit row per inbox row, none
   failed or pending), N active relations, every welcome command done (its message at WeCom once) or
   expired unsent, every `mark_tag` done and every customer tagged in WeCom, nothing pending.

    .venv/bin/python bench/faults.py [N=10000]
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")] + [str(ROOT / "bench")]  # the product before this directory (bench/campaigns.py is not campaigns/)

from common import emit_rows, row  # noqa: E402
from stack import PY, ROOT, Stack, add_customers  # noqa: E402

FOREVER = 10**9
FAULTS = [
    {"path": "/cgi-bin/externalcontact/get", "http_status": 502, "probability": 0.05, "times": FOREVER},
    {"path": "/cgi-bin/externalcontact/get", "errcode": 45009, "probability": 0.05, "times": FOREVER},
    {"path": "/cgi-bin/externalcontact/send_welcome_msg", "http_status": 503, "after": True, "probability": 0.2,
     "times": FOREVER},
    {"path": "/cgi-bin/externalcontact/mark_tag", "errcode": 45009, "probability": 0.1, "times": FOREVER},
    {"path": "/cgi-bin/externalcontact/mark_tag", "http_status": 502, "after": True, "probability": 0.05,
     "times": FOREVER},
]


def wait_until(what: str, check: Any, timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def settled(stack: Stack) -> bool:
    db = stack.db
    return not db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'pending'") and \
        not db.scalar("SELECT count(*) FROM wecom_outbox WHERE status = 'pending'") and \
        not db.scalar("SELECT count(*) FROM tasks WHERE status = 'pending'")


def admin_token(stack: Stack) -> str:
    done = subprocess.run([PY, "-m", "flask", "tokens", "create", "--name", "faults", "--role", "admin"], cwd=ROOT,
                          env=stack.env, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def wecom_tagged(stack: Stack, tag_id: str) -> int:
    """Relations of zhangsan that WeCom (the emulator) lists with the tag."""
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith("WECOM_")})
    from wecom.client import MemoryTokenStore, WeComClient

    client = WeComClient(stack.env["WECOM_CORP_ID"], stack.env["WECOM_CONTACT_SECRET"], api_base=stack.emulator,
                         token_store=MemoryTokenStore())
    return sum(1 for page in client.iter_batch_get_by_user(["zhangsan"]) for row in page.items
               if tag_id in (row["follow_info"].get("tag_id") or []))


def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(tmp).start()
        try:
            stack.start_workers(2, "--lease", "10")
            _group, tag_ids = stack.act("corp_tag_group_created", group_name="压测标签", tag_names=["已联系"])
            tag_id = tag_ids[0]
            wait_until("the tag callback", lambda: stack.db.scalar(
                f"SELECT count(*) FROM tags WHERE tag_id = '{tag_id}'"), 60)
            token = admin_token(stack)
            for fault in FAULTS:
                stack.http.post(f"{stack.emulator}/emulator/faults", json=fault, timeout=10).raise_for_status()
            started = time.monotonic()
            adder = threading.Thread(target=add_customers, args=(stack, n, "故障客户"), kwargs={"welcome_every": 4})
            adder.start()
            wait_until("a third of the events applied", lambda: (stack.db.scalar(
                "SELECT count(*) FROM wecom_inbox WHERE status = 'done'") or 0) >= n // 3, 900, every=0.05)
            victim = stack.workers[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.monotonic() - started
            claimed_by_victim = stack.db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'pending' "
                                                "AND claimed_by IS NOT NULL")
            time.sleep(2)
            stack.workers[0] = stack._spawn([PY, "-m", "flask", "worker", "--lease", "10"], stack.env)
            adder.join()
            stack.wait_delivered()
            wait_until("every event applied", lambda: settled(stack), 900)
            customers = [row for row in stack.db.rows("SELECT external_userid FROM customers")]
            resp = stack.http.post(f"{stack.web}/api/v1/tags/bulk", timeout=60,
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"add": [tag_id], "external_userids": [c[0] for c in customers][:10000]})
            if resp.status_code != 202:
                raise SystemExit(f"bulk tag edit refused: {resp.status_code} {resp.text}")
            wait_until("every tag sent", lambda: settled(stack) and stack.db.scalar(
                "SELECT count(*) FROM wecom_outbox WHERE method = 'mark_tag'") >= min(n, 10000), 900)
            elapsed = time.monotonic() - started
            db = stack.db
            inbox_id = stack.json_field("detail", "inbox_id")
            welcome = stack.http.get(f"{stack.emulator}/emulator/welcome-messages", timeout=10).json()
            figures = {
                "callbacks": n,
                "inbox rows": db.scalar("SELECT count(*) FROM wecom_inbox"),
                "inbox done": db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'done'"),
                "inbox failed": db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'failed'"),
                "inbox pending": db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'pending'"),
                "events with exactly one audit row": db.scalar(
                    f"SELECT count(*) FROM (SELECT {inbox_id} FROM audit_log WHERE actor = 'wecom' "
                    f"GROUP BY {inbox_id} HAVING count(*) = 1) x"),
                "audit rows of events": db.scalar(
                    f"SELECT count(*) FROM audit_log WHERE actor = 'wecom' AND {inbox_id} IS NOT NULL"),
                "active relations": db.scalar("SELECT count(*) FROM follow_relations WHERE status = 'active'"),
                "worker killed after (s)": round(killed_at, 1),
                "claimed by the killed worker": claimed_by_victim,
                "welcome commands": db.scalar("SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg'"),
                "welcome done": db.scalar("SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg' "
                                          "AND status = 'done'"),
                "welcome done by an attempt whose answer was lost": db.scalar(
                    "SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg' AND status = 'done' "
                    "AND CAST(result AS text) LIKE '%done_by_an_earlier_attempt%'"),
                "welcome expired unsent": db.scalar("SELECT count(*) FROM wecom_outbox WHERE method = "
                                                    "'send_welcome_msg' AND status = 'failed' AND last_error = 'expired'"),
                "welcome failed after an attempt whose answer was lost": db.scalar(
                    "SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg' AND status = 'failed' "
                    "AND last_error LIKE '%may have taken effect%'"),
                "welcome failed otherwise": db.scalar(
                    "SELECT count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg' AND status = 'failed' "
                    "AND last_error <> 'expired' AND last_error NOT LIKE '%may have taken effect%'"),
                "welcome failures": {str(e)[:120]: c for e, c in db.rows(
                    "SELECT last_error, count(*) FROM wecom_outbox WHERE method = 'send_welcome_msg' "
                    "AND status = 'failed' GROUP BY last_error")},
                "welcome messages at WeCom": welcome["count"],
                "welcome codes used at WeCom": welcome["codes_used"],
                "mark_tag commands": db.scalar("SELECT count(*) FROM wecom_outbox WHERE method = 'mark_tag'"),
                "mark_tag done": db.scalar("SELECT count(*) FROM wecom_outbox WHERE method = 'mark_tag' "
                                           "AND status = 'done'"),
                "customers tagged at WeCom": wecom_tagged(stack, tag_id),
                "outbox pending": db.scalar("SELECT count(*) FROM wecom_outbox WHERE status = 'pending'"),
                "seconds": round(elapsed, 1),
                "database": stack.kind,
            }
        finally:
            stack.stop()
    events = figures["inbox rows"]
    figures["ok"] = bool(
        figures["inbox done"] == events and not figures["inbox failed"] and not figures["inbox pending"]
        and figures["events with exactly one audit row"] == events == figures["audit rows of events"]
        and figures["active relations"] == n
        # every welcome command is done, expired before any attempt reached WeCom, or failed after an
        # attempt that reached it (the faults here always act before losing the answer): so WeCom holds
        # exactly one message for each done or maybe-delivered command, and none twice
        and figures["welcome done"] + figures["welcome expired unsent"]
        + figures["welcome failed after an attempt whose answer was lost"] == figures["welcome commands"]
        and figures["welcome messages at WeCom"] == figures["welcome codes used at WeCom"]
        == figures["welcome done"] + figures["welcome failed after an attempt whose answer was lost"]
        and not figures["welcome failed otherwise"]
        and figures["mark_tag done"] == figures["mark_tag commands"] == min(n, 10000)
        and figures["customers tagged at WeCom"] == min(n, 10000) and not figures["outbox pending"])
    return figures


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    figures = run(n)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"database {figures['database']}; 2 web processes, 2 workers, faults {json.dumps(FAULTS)}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")
    print("exactly once under faults:", "yes" if figures["ok"] else "NO")
    emit_rows([row("exactly once under faults", f"{figures['database']}, {n:,} callbacks, 2 web + 2 workers, "
                   "SIGKILL, 5xx/45009", "every event and command once", 1 if figures["ok"] else 0, "", "yes",
                   figures["ok"]),
               row("exactly once under faults", f"{figures['database']}, {n:,} callbacks", "time",
                   figures["seconds"], "s")])
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps({"faults": figures}, indent=2))
    if not figures["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
