"""The worker: applies inbox events, runs local tasks and sends outbox commands; one model, two deployments.

- **Embedded default** (`SCRM_EMBEDDED_WORKER=1`, SQLite, `flask run`): `install_embedded(app)`
  starts ONE worker thread (and the scheduler) per process, with the first HTTP request that
  process serves. That rule is what keeps it out of `flask db …`, `flask shell`, `flask worker`,
  the tests and the reloader's watcher process: none of them serves requests. A plain WSGI
  server starts it the same way. It is off under TESTING and when the setting is 0 (the
  documented gunicorn deployment).
- **Production** (`flask worker`, one or more processes): `Worker.run()` in the foreground, the
  scheduler beside it, SIGTERM/SIGINT finish the current row and stop.

A worker loops: claim a batch of due inbox rows (a lease; see `wecom.service.claim_events`) and
apply each (handler + status in one transaction), then run due local tasks (`core.tasks`: the
auto-tagging rules, …) the same way, then claim and send due outbox commands. It
sleeps until woken (the callback and every commit that enqueued call the wake hook) or until its
poll interval passes, so events are applied at once in the embedded default and within the poll
interval by a separate `flask worker`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from flask import Flask

from core.jobs import start_scheduler
from core.db import db
from core.queue import RETRY_BASE, WorkListener, listener_url, set_wake_hook
from core.tasks import claim_tasks, process_task
from wecom.client import WeComClient, agent_client, contact_client
from wecom.service import claim_commands, claim_events, process_command, process_events

log = logging.getLogger("scrm.crm.worker")

EMBEDDED_KEY = "scrm.crm.embedded_worker"
_EMBEDDED_LOCK = threading.Lock()


def worker_name() -> str:
    """host:pid:random — what `claimed_by` shows."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """One worker loop over the inbox and the outbox of one app."""

    def __init__(self, app: Flask, *, name: str | None = None, lease: float = 60.0, batch: int = 10,
                 event_batch: int = 100, poll_interval: float = 1.0, retry_base: float = RETRY_BASE) -> None:
        self.app = app
        self.name = name or worker_name()
        self.lease = lease
        self.batch = batch
        self.event_batch = event_batch
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.counts: dict[str, int] = {}
        self._wakeup = threading.Event()
        self.listener: WorkListener | None = None
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.name}>"

    # ------------------------------------------------------------ control

    def wake(self) -> None:
        """Run the next iteration now (called from any thread)."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the current row, then leave `run()`."""
        self._stop.set()
        self._wakeup.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------ work

    def client_for(self, name: str) -> WeComClient:
        return agent_client() if name == "agent" else contact_client()

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def run_once(self) -> int:
        """Claim and handle one batch of due events, then of due commands; how many were handled."""
        handled = 0
        with self.app.app_context():
            handled += self._send_urgent()
            events = claim_events(self.name, self.event_batch, self.lease)
            if events and not self._stop.is_set():
                for outcome in process_events(events, self.name, retry_base=self.retry_base).values():
                    self._count("event." + outcome)
                handled += len(events)
            for task_id in claim_tasks(self.name, self.batch, self.lease):
                if self._stop.is_set():
                    break
                self._count("task." + process_task(task_id, self.name, retry_base=self.retry_base))
                handled += 1
            for command_id in claim_commands(self.name, self.batch, self.lease):
                if self._stop.is_set():
                    break
                self._count("command." + process_command(command_id, self.name, self.client_for,
                                                         retry_base=self.retry_base))
                handled += 1
        return handled

    def listen(self) -> WorkListener | None:
        """On PostgreSQL, be woken by the database when any process queues work (LISTEN/NOTIFY)."""
        with self.app.app_context():
            url = listener_url(db.engine)
        if url is None:
            return None
        self.listener = WorkListener(url, self.wake, name=f"scrm-listen-{self.name}").start()
        return self.listener

    def _send_urgent(self) -> int:
        """Every due command with a deadline (welcome messages: 20 s) before anything else: under a burst
        of events they would otherwise wait behind a hundred events per round and expire."""
        handled = 0
        while not self._stop.is_set():
            ids = claim_commands(self.name, self.batch, self.lease, urgent_only=True)
            if not ids:
                break
            for command_id in ids:
                self._count("command." + process_command(command_id, self.name, self.client_for,
                                                         retry_base=self.retry_base))
                handled += 1
        return handled

    def run(self) -> None:
        """Loop until `stop()`: work while there is work, else sleep until woken or polled."""
        log.info("crm.worker.started name=%s", self.name)
        failures = 0
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                handled = self.run_once()
                failures = 0
            except Exception:  # the database went away, a lock timed out: back off, keep running
                failures += 1
                log.exception("crm.worker.iteration-failed name=%s failures=%s", self.name, failures)
                self._stop.wait(min(30.0, self.poll_interval * 2 ** min(failures, 5)))
                continue
            if not handled:
                self._wakeup.wait(self.poll_interval)
        if self.listener is not None:
            self.listener.stop()
        log.info("crm.worker.stopped name=%s counts=%s", self.name, self.counts)

    def start_thread(self) -> threading.Thread:
        """Run the loop in a daemon thread."""
        self.thread = threading.Thread(target=self.run, name=f"scrm-worker-{self.name}", daemon=True)
        self.thread.start()
        return self.thread


def drain(app: Flask, *, timeout: float = 30.0, worker: Worker | None = None) -> int:
    """Run a worker until nothing is due (events in backoff wait); how many rows were handled.

    For tests and one-off commands (`flask worker --once`).
    """
    worker = worker or Worker(app)
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        handled = worker.run_once()
        total += handled
        if not handled:
            break
    return total


# ---------------------------------------------------------------- the embedded default


def install_embedded(app: Flask) -> None:
    """Start the embedded worker with the first request this process serves (see module docstring)."""
    conf = app.extensions["scrm.settings"]
    if app.testing or not conf.SCRM_EMBEDDED_WORKER:
        return

    @app.before_request
    def _start_embedded_worker() -> None:
        state = app.extensions.get(EMBEDDED_KEY)
        if state is None or state[0] != os.getpid():
            start_embedded(app)


def start_embedded(app: Flask) -> Worker:
    """The process's embedded worker (and scheduler), started once per process (fork-safe)."""
    with _EMBEDDED_LOCK:
        state: tuple[int, Worker, Any] | None = app.extensions.get(EMBEDDED_KEY)
        if state is not None and state[0] == os.getpid():
            return state[1]
        worker = Worker(app)
        set_wake_hook(app, worker.wake)
        worker.start_thread()
        scheduler = start_scheduler(app, owner=worker.name)
        app.extensions[EMBEDDED_KEY] = (os.getpid(), worker, scheduler)
        log.info("crm.worker.embedded name=%s", worker.name)
        return worker
