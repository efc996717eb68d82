#!/usr/bin/env python3
"""The project's two front-door commands; needs only Python 3.11+.

    python3 dev.py demo    set up, start the WeCom emulator and the server on SQLite, seed, sync, print the URLs
    python3 dev.py test    set up and run the whole test suite (extra arguments go to pytest)

Setup is a virtualenv in .venv with the exact versions of requirements.lock, reinstalled only
when the lock changes. `.ci/run` calls `dev.py test --ci`: the suite runs a second time against
PostgreSQL, and a missing Chromium or PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
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
    "DATABASE_URL": "sqlite:///demo.db",
}


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
        env.update(SCRM_REQUIRE_CHROMIUM="1", SCRM_REQUIRE_POSTGRES="1")
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
        env["TEST_DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL", CI_POSTGRES)
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
        say("migrating the database (instance/demo.db)")
        run([*flask, "db", "upgrade"], env=env)
        say("full sync from the emulator")
        run([*flask, "wecom", "sync"], env=env)
        run([*flask, "roles", "grant", "zhangwei", "admin"], env=env, stdout=subprocess.DEVNULL)
        say(f"starting the server on port {DEMO_PORT}")
        procs.append(subprocess.Popen([*flask, "run", "--port", str(DEMO_PORT)], cwd=ROOT, env=env))
        _wait_http(f"http://127.0.0.1:{DEMO_PORT}/healthz", procs[1], "the server")
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
