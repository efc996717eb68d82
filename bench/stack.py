"""What the benchmarks that drive the whole product share: the web server as the production recipe
runs it, the WeCom emulator under gunicorn in its own process, and `flask worker` processes, on a
fresh database (PostgreSQL by default; BENCH_DATABASE_URL=sqlite for a file)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from worker_crash import ENV, PY, Db, database, free_port, wait_http  # noqa: E402

WORKER = ["-m", "flask", "worker"]


class Stack:
    """The web server, the emulator and the worker processes of one run."""

    def __init__(self, tmp: str) -> None:
        self.db_url, self.kind, self.drop = database(tmp)
        self.env = {**os.environ, **ENV, "DATABASE_URL": self.db_url, "SCRM_EMBEDDED_WORKER": "0"}
        self.logs = open(Path(tmp) / "processes.log", "ab")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.db = Db(self.db_url)

    def start(self) -> "Stack":
        subprocess.run([PY, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=self.env, check=True, capture_output=True)
        web_port, emu_port = free_port(), free_port()
        self.web = f"http://127.0.0.1:{web_port}"
        self.emulator = f"http://127.0.0.1:{emu_port}"
        emu_env = {**self.env, "EMULATOR_CALLBACK_URL": self.web + "/wecom/callback"}
        self._spawn([PY, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "16", "--no-control-socket",
                     "-b", f"127.0.0.1:{emu_port}", "wecom.emulator.run:application()"], emu_env)
        self._spawn([PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "-b",
                     f"127.0.0.1:{web_port}", "app:create_app()"], self.env)
        wait_http(self.emulator + "/emulator/summary", self.procs[0])
        wait_http(self.web + "/livez", self.procs[1])
        self.env["WECOM_API_BASE"] = self.emulator
        self.http = requests.Session()
        self.act("add_staff", userid="zhangsan", name="张三")
        return self

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.logs, stderr=self.logs)
        self.procs.append(proc)
        return proc

    def act(self, action: str, **body: Any) -> Any:
        resp = self.http.post(f"{self.emulator}/emulator/act/{action}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()["result"]

    def wait_delivered(self, timeout: float = 600) -> None:
        resp = self.http.post(f"{self.emulator}/emulator/wait-idle", json={"timeout": timeout}, timeout=timeout + 5)
        if not resp.json().get("idle"):
            raise SystemExit("the emulator could not deliver every callback")

    def calls(self, path: str) -> int:
        return int(self.http.get(f"{self.emulator}/emulator/calls", params={"path": path}, timeout=10).json()[path])

    def start_workers(self, n: int, *args: str) -> None:
        for _ in range(n):
            self.workers.append(self._spawn([PY, *WORKER, *args], self.env))

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.wait(30)
        self.workers.clear()

    def json_field(self, column: str, key: str) -> str:
        """SQL for a key of a JSON column, as text, in this database's dialect."""
        return f"({column} ->> '{key}')" if self.kind == "PostgreSQL" else f"json_extract({column}, '$.{key}')"

    def pending(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM wecom_inbox WHERE status = 'pending'") or 0)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.logs.close()
        self.db.engine.dispose()
        self.drop()


def add_customers(stack: Stack, n: int, prefix: str, *, welcome_every: int = 0) -> None:
    """n customers add zhangsan, from 8 threads (the emulator delivers each callback); every
    `welcome_every`-th with a WelcomeCode (0: none)."""
    def run(part: range) -> None:
        session = requests.Session()
        for i in part:
            welcome = bool(welcome_every) and i % welcome_every == 0
            resp = session.post(f"{stack.emulator}/emulator/act/customer_adds_staff", timeout=30,
                                json={"userid": "zhangsan", "name": f"{prefix}{i}", "welcome_code": welcome})
            resp.raise_for_status()

    threads = [threading.Thread(target=run, args=(range(k, n, 8),)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


