#!/usr/bin/env python3
"""The project's two front-door commands; needs only Python 3.11+.

    python3 dev.py demo    set up, start the WeCom emulator and the server on SQLite, seed, sync, print the URLs
    python3 dev.py test    set up and run the whole test suite (extra arguments go to pytest)

The demo starts BOTH fresh every time: the emulator keeps its corp in memory and seeds a new one at each
start, so the demo database (instance/demo.db, or $DEMO_DB) is deleted first. Keeping the database while
the emulator forgets what happened would make the next sync mark every customer of the previous demo
as lost. After the sync it adds the demo's activity (stages, follow-ups, behaviour events, value tiers:
`flask console demo-activity`), plays a few customers deleting and adding staff in the emulator (real
callbacks), and refreshes the overview. DEMO_SETUP_ONLY=1 stops after that (the tests use it).

Setup is a virtualenv in .venv with the exact versions of requirements.lock, reinstalled only
when the lock changes. `.ci/run` calls `dev.py test --ci`: the suite runs a second time against
PostgreSQL, and a missing Chromium or PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
LOCK = ROOT / "requirements.lock"
CHROMIUM = "/usr/bin/chromium"
CI_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
LINTED = ["app.py", "core", "wecom", "crm", "identity", "tagging", "handover", "campaigns", "channels", "sidebar",
          "console", "bench", "dev.py"]

DEMO_PORT = int(os.environ.get("DEMO_PORT", "5000"))
EMULATOR_PORT = int(os.environ.get("EMULATOR_PORT", "8900"))
DEMO_DB = Path(os.environ.get("DEMO_DB") or ROOT / "instance" / "demo.db").resolve()
DEMO_ENV = {
    "SCRM_DEMO": "1",
    "WECOM_CORP_ID": "wwdemo0000000001",
    "WECOM_CONTACT_SECRET": "demo-contact-secret",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_AGENT_SECRET": "demo-agent-secret",
    "WECOM_TOKEN": "DemoToken2026",
    "WECOM_ENCODING_AES_KEY": "DemoEncodingAesKey0123456789abcdefghijklmno",
    "WECOM_API_BASE": f"http://127.0.0.1:{EMULATOR_PORT}",
    "WECOM_OAUTH_BASE": f"http://127.0.0.1:{EMULATOR_PORT}",
    "SCRM_PUBLIC_URL": f"http://127.0.0.1:{DEMO_PORT}",
    "DATABASE_URL": f"sqlite:///{DEMO_DB}",
}
# What a customer does in the demo's first minutes (real callbacks through the emulator): two customers
# delete their salesperson, one salesperson deletes a customer, three new customers scan the trade-show code.
DEMO_LOSSES = ("customer_deletes_staff", "customer_deletes_staff", "staff_deletes_customer")
DEMO_NEW = (("zhangwei", "展会访客王先生"), ("lina", "展会访客刘女士"), ("chenjing", "展会访客赵总"))


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup() -> None:
    """Create .venv and install the locked dependencies (once per lock version)."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}).")
    if not PY.exists():
        say("creating .venv")
        run([sys.executable, "-m", "venv", str(VENV)])
    stamp = VENV / ".lock-sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        say("installing the locked dependencies into .venv (first run takes a minute)")
        run([str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(LOCK)])
        stamp.write_text(digest)


def ensure_chromium(required: bool) -> None:
    """Browser tests drive Debian's Chromium; install it when we may (root with apt-get)."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser tests")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "fonts-noto-cjk"], env=env, check=False)
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
        if required:
            sys.exit(message)
        say(message + "; browser tests will be skipped")


def cmd_test(args: list[str]) -> int:
    ci = "--ci" in args
    args = [a for a in args if a != "--ci"]
    setup()
    ensure_chromium(required=ci)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TEST_DATABASE_URL", None)
    if ci:
        env["SCRM_REQUIRE_CHROMIUM"] = "1"
    if not args:  # the whole suite: the static checks first (they take seconds)
        for what, cmd in (("type check (mypy)", [str(PY), "-m", "mypy"]),
                          ("lint (ruff: unused imports, undefined names)",
                           [str(PY), "-m", "ruff", "check", "--select", "F", "--quiet", *LINTED])):
            say(what)
            if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
                return 1
    say("test suite on SQLite")
    code = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env).returncode
    if ci and code == 0:
        say(f"test suite again on PostgreSQL ({CI_POSTGRES})")
        # Only this pass must reach PostgreSQL: on the SQLite pass the PostgreSQL-only tests skip.
        env.update(TEST_DATABASE_URL=os.environ.get("TEST_DATABASE_URL", CI_POSTGRES), SCRM_REQUIRE_POSTGRES="1")
        code = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT, env=env).returncode
    return code


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} stopped while starting (exit code {proc.returncode}); see the lines above")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"{what} did not answer at {url} within {seconds:.0f} s")


def fresh_demo_database(path: Path = DEMO_DB) -> list[Path]:
    """Delete the demo's SQLite database (and its WAL files) so that it starts as fresh as the emulator."""
    removed = []
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        candidate = path.with_name(name)
        if candidate.exists():
            candidate.unlink()
            removed.append(candidate)
    return removed


def _emulator_act(action: str, body: dict[str, object]) -> object:
    request = urllib.request.Request(f"http://127.0.0.1:{EMULATOR_PORT}/emulator/act/{action}", method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def play_demo_customers() -> None:
    """A few customers leave and a few arrive through the trade-show channel, as callbacks the server applies."""
    with sqlite3.connect(DEMO_DB) as conn:  # the same customers every time: the emulator's seed is deterministic
        rows = conn.execute("SELECT c.external_userid, r.userid FROM follow_relations r JOIN customers c "
                            "ON c.id = r.customer_id WHERE r.status = 'active' ORDER BY c.external_userid, r.userid "
                            f"LIMIT {len(DEMO_LOSSES)}").fetchall()
    for action, (ext, userid) in zip(DEMO_LOSSES, rows):
        _emulator_act(action, {"userid": userid, "external_userid": ext})
    for userid, name in DEMO_NEW:
        _emulator_act("customer_adds_staff", {"userid": userid, "name": name, "state": "expo2026"})
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{EMULATOR_PORT}/emulator/wait-idle",
                                                  method="POST", data=b"{}"), timeout=60)
    deadline = time.time() + 60  # then the server's worker applies them
    while time.time() < deadline:
        with sqlite3.connect(DEMO_DB) as conn:
            if not conn.execute("SELECT count(*) FROM wecom_inbox WHERE status = 'pending'").fetchone()[0]:
                return
        time.sleep(0.5)


def cmd_demo(args: list[str]) -> int:
    setup()
    env = {**os.environ, **DEMO_ENV, "FLASK_APP": "app", "PYTHONPATH": str(ROOT)}
    seed = args[0] if args else "demo"
    flask = [str(PY), "-m", "flask"]
    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        say(f"starting the WeCom emulator on port {EMULATOR_PORT} (seed: {seed})")
        procs.append(subprocess.Popen(
            [*flask, "wecom", "emulator", "--port", str(EMULATOR_PORT), "--seed", seed,
             "--callback-url", f"http://127.0.0.1:{DEMO_PORT}/wecom/callback"], cwd=ROOT, env=env))
        _wait_http(f"http://127.0.0.1:{EMULATOR_PORT}/emulator/summary", procs[0], "the emulator")
        if fresh_demo_database():
            say(f"the emulator seeded a new corp: starting the demo database afresh too ({DEMO_DB})")
        say(f"migrating the database ({DEMO_DB})")
        run([*flask, "db", "upgrade"], env=env)
        say("full sync from the emulator")
        run([*flask, "wecom", "sync"], env=env)
        run([*flask, "roles", "grant", "zhangwei", "admin"], env=env, stdout=subprocess.DEVNULL)
        say("the demo's activity: stages, follow-ups, behaviour events, value tiers")
        run([*flask, "console", "demo-activity"], env=env)
        say(f"starting the server on port {DEMO_PORT}")
        procs.append(subprocess.Popen([*flask, "run", "--port", str(DEMO_PORT)], cwd=ROOT, env=env))
        _wait_http(f"http://127.0.0.1:{DEMO_PORT}/healthz", procs[1], "the server")
        say("a few customers leave and arrive (emulator callbacks)")
        play_demo_customers()
        run([*flask, "console", "overview-refresh"], env=env)
        if os.environ.get("DEMO_SETUP_ONLY"):
            return 0
        base = f"http://127.0.0.1:{DEMO_PORT}"
        print(f"""
  The demo is running (Ctrl-C stops both).
    Chat sidebar:        {base}/sidebar/demo?userid=zhangwei   (as 张伟, on his newest customer)
    Web console:         {base}/console/login                   (sign in as zhangwei: admin)
    Server health:       {base}/healthz
    WeCom emulator:      http://127.0.0.1:{EMULATOR_PORT}/emulator/summary
    Callback URL:        {base}/wecom/callback  (the emulator sends its callbacks here)
  Try a customer action in the emulator, e.g.:
    curl -X POST http://127.0.0.1:{EMULATOR_PORT}/emulator/act/customer_adds_staff \\
         -H 'Content-Type: application/json' -d '{{"userid": "zhangwei", "name": "新客户", "state": "expo2026"}}'
""", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    return {"demo": cmd_demo, "test": cmd_test}[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
