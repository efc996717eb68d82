"""The worker machinery: claims and leases, retries and caps, replay, job locks, the embedded
start rule, /healthz figures, and `kill -9` of a real `flask worker` process mid-burst."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from core.jobs import JOBS, acquire, release, run_job
from crm.models import AuditLog, Customer, FollowRelation
from crm.worker import EMBEDDED_KEY, Worker
from core.db import dispose_engines, utcnow
from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from wecom import dispatch
from wecom.client import WeComError
from wecom.crypto import parse_xml
from wecom.emulator.callbacks import event_xml
from core.models import JobLock, Task
from core.queue import release_expired, set_wake_hook
from wecom.models import InboxEvent, OutboxCommand
from wecom.service import INBOX_MAX_ATTEMPTS, claim_commands, claim_events, enqueue, process_event, store_event

ROOT = Path(__file__).resolve().parents[2]


def _event(n: int, change_type: str = "transfer_fail") -> int:
    plaintext = event_xml(TEST_CORP_ID, 1795000000 + n, "change_external_contact", change_type,
                          [("FailReason", "customer_refused"), ("UserID", "u"), ("ExternalUserID", f"wm{n:030d}")])
    return store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).id


# ---------------------------------------------------------------- claims


def test_claims_are_disjoint_and_a_dead_workers_lease_runs_out(db_session: Any) -> None:
    ids = [_event(n) for n in range(6)]
    a = claim_events("worker-a", limit=4, lease=60)
    b = claim_events("worker-b", limit=4, lease=60)
    assert a == ids[:4] and b == ids[4:]
    assert claim_events("worker-c", limit=10, lease=60) == []
    # worker-a dies; once its lease is over its rows are claimable again, attempts counted
    db_session.execute(InboxEvent.__table__.update().where(InboxEvent.claimed_by == "worker-a")
                       .values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    assert release_expired(InboxEvent, Task, OutboxCommand) == 4
    assert claim_events("worker-c", limit=10, lease=60) == ids[:4]
    db_session.expire_all()
    assert {e.attempts for e in db_session.scalars(select(InboxEvent).where(InboxEvent.id.in_(ids[:4])))} == {2}
    # a worker whose lease was taken over cannot finish the row
    assert process_event(ids[0], "worker-a") == "skipped"
    assert process_event(ids[0], "worker-c") == "done"


def test_events_and_commands_with_a_deadline_are_claimed_first(db_session: Any) -> None:
    """In a backlog, a customer's WelcomeCode (20 s) must not wait behind older events."""
    older = [_event(n) for n in range(3)]
    plaintext = event_xml(TEST_CORP_ID, 1795000100, "change_external_contact", "add_external_contact",
                          [("UserID", "u"), ("ExternalUserID", "wm" + "9" * 30), ("WelcomeCode", "WC1")])
    welcome = db_session.get(InboxEvent, store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext)).id)
    assert welcome.deadline == dt.datetime.fromtimestamp(1795000120, dt.timezone.utc)
    assert claim_events("worker-a", limit=2, lease=60) == [welcome.id, older[0]]
    assert claim_events("worker-a", limit=5, lease=60) == older[1:]

    plain = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": "wm1",
                                                            "add_tag": ["et1"]})
    urgent = enqueue(TEST_CORP_ID, "welcome", "send_welcome_msg", {"welcome_code": "WC1", "text": "您好"},
                     not_after=utcnow() + dt.timedelta(seconds=20))
    db_session.commit()
    assert claim_commands("worker-a", limit=2, lease=60) == [urgent.id, plain.id]


def test_handler_failures_retry_with_backoff_then_fail_and_replay(app: Any, db_session: Any,
                                                                  runner: Any, monkeypatch: Any) -> None:
    calls: list[int] = []

    def flaky(event: InboxEvent) -> None:
        calls.append(event.id)
        raise WeComError(-1, "system busy", "/cgi-bin/externalcontact/get")

    def broken(event: InboxEvent) -> None:
        raise WeComError(48002, "api forbidden", "/cgi-bin/externalcontact/get")

    table = dict(app.extensions[dispatch.EXTENSION_KEY])
    monkeypatch.setitem(app.extensions, dispatch.EXTENSION_KEY,
                        {**table, ("change_external_contact", "transfer_fail"): flaky,
                         ("change_external_contact", "msg_audit_approved"): broken})
    retried, failed = _event(1), _event(2, "msg_audit_approved")
    worker = Worker(app, retry_base=0.001)
    deadline = time.monotonic() + 20  # backoff doubles: wait for the outcome, not a number of loops
    while time.monotonic() < deadline:
        worker.run_once()
        db_session.expire_all()
        if {e.status for e in db_session.scalars(select(InboxEvent))} == {"failed"}:
            break
        time.sleep(0.01)
    db_session.expire_all()
    row = db_session.get(InboxEvent, retried)
    assert (row.status, row.attempts) == ("failed", INBOX_MAX_ATTEMPTS) and len(calls) == INBOX_MAX_ATTEMPTS
    assert "errcode=-1" in row.last_error
    row = db_session.get(InboxEvent, failed)
    assert (row.status, row.attempts) == ("failed", 1) and "errcode=48002" in row.last_error  # permanent: at once

    monkeypatch.setitem(app.extensions, dispatch.EXTENSION_KEY, table)  # the real handlers again
    result = runner.invoke(args=["wecom", "replay", "--failed"])
    assert result.exit_code == 0 and "2 event(s)" in result.output
    db_session.expire_all()
    assert {e.status for e in db_session.scalars(select(InboxEvent))} == {"pending"}
    worker.run_once()
    db_session.expire_all()
    assert {e.status for e in db_session.scalars(select(InboxEvent))} == {"done"}
    assert runner.invoke(args=["wecom", "replay"]).exit_code != 0  # says what to give


def test_enqueue_validates_dedupes_and_wakes_after_commit(app: Any, db_session: Any) -> None:
    woken: list[int] = []
    set_wake_hook(app, lambda: woken.append(1))
    try:
        with pytest.raises(ValueError):
            enqueue(TEST_CORP_ID, "x", "no_such_method", {})
        with pytest.raises(TypeError):  # arguments that are not JSON
            enqueue(TEST_CORP_ID, "x", "mark_tag", {"when": object()})
        first = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": "e",
                                                                "add_tag": ["t"]}, dedupe_key="k")
        again = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": "e",
                                                                "add_tag": ["t"]}, dedupe_key="k")
        assert again.id == first.id and woken == []  # nothing before the commit
        db_session.commit()
        assert woken == [1]
        db_session.commit()
        assert woken == [1]  # only a commit that enqueued wakes
    finally:
        set_wake_hook(app, None)
    assert claim_commands("w", 10, 60) == [first.id]


def test_a_command_refused_for_good_is_failed_with_errcode(app: Any, db_session: Any) -> None:
    from wecom.service import process_command

    class Client:
        def mark_tag(self, *args: Any, **kwargs: Any) -> None:
            raise WeComError(40068, "invalid tagid", "/cgi-bin/externalcontact/mark_tag")

    seen: list[tuple[str, int | None]] = []
    dispatch.register_outbox_hooks(app, "test_kind", on_failed=lambda c: seen.append((c.status, c.last_errcode)))
    command = enqueue(TEST_CORP_ID, "test_kind", "mark_tag", {"userid": "u", "external_userid": "e"})
    db_session.commit()
    (claimed,) = claim_commands("w", 10, 60)
    assert process_command(claimed, "w", lambda name: Client()) == "failed"
    db_session.expire_all()
    row = db_session.get(OutboxCommand, command.id)
    assert (row.status, row.last_errcode, row.attempts) == ("failed", 40068, 1)
    assert seen == [("failed", 40068)]  # the after-hook saw the outcome in the same transaction


# ---------------------------------------------------------------- scheduled jobs


def test_job_lock_never_runs_a_job_twice_at_once_nor_twice_a_night(app: Any, db_session: Any) -> None:
    hour = dt.timedelta(hours=1)
    assert acquire(TEST_CORP_ID, "nightly", "proc-1", hour, min_interval=12 * hour)
    assert not acquire(TEST_CORP_ID, "nightly", "proc-2", hour, min_interval=12 * hour)  # running
    release(TEST_CORP_ID, "nightly", "proc-1")
    assert not acquire(TEST_CORP_ID, "nightly", "proc-2", hour, min_interval=12 * hour)  # ran tonight
    assert acquire(TEST_CORP_ID, "sweep", "proc-1", dt.timedelta(seconds=-1))  # lease already over
    assert acquire(TEST_CORP_ID, "sweep", "proc-2", hour)  # a crashed holder's lock runs out
    lock = db_session.scalar(select(JobLock).where(JobLock.name == "sweep"))
    assert lock.locked_by == "proc-2"


def test_run_job_runs_the_declared_job_under_its_lock(app: Any, db_session: Any) -> None:
    assert {"nightly_sync", "sweep_claims"} <= set(JOBS)
    assert run_job(app, "sweep_claims", "proc-1")
    lock = db_session.scalar(select(JobLock).where(JobLock.name == "sweep_claims"))
    assert lock.locked_by is None and lock.last_run_at is not None
    db_session.execute(JobLock.__table__.update().where(JobLock.name == "sweep_claims").values(last_run_at=None))
    db_session.commit()
    assert acquire(TEST_CORP_ID, "sweep_claims", "proc-2", dt.timedelta(minutes=5))
    assert not run_job(app, "sweep_claims", "proc-1")  # held by proc-2


def test_an_interval_job_fired_by_every_workers_scheduler_runs_once_per_period(app: Any, db_session: Any) -> None:
    """Two `flask worker` processes each fire `sweep_claims` (every 60 s), a second apart: it runs once."""
    from core.jobs import once_per_period
    from core.settings import settings

    with app.app_context():
        assert once_per_period(JOBS["sweep_claims"], settings()) == dt.timedelta(seconds=48)
        assert once_per_period(JOBS["nightly_sync"], settings()) == JOBS["nightly_sync"].min_interval
    assert run_job(app, "sweep_claims", "proc-1")
    assert not run_job(app, "sweep_claims", "proc-2")  # released, but it ran less than 48 s ago
    db_session.execute(JobLock.__table__.update().where(JobLock.name == "sweep_claims")
                       .values(last_run_at=utcnow() - dt.timedelta(seconds=50)))
    db_session.commit()
    assert run_job(app, "sweep_claims", "proc-2")  # the next period


# ---------------------------------------------------------------- embedded start rule and health


def test_embedded_worker_starts_with_the_first_request_once(database_url: str, db_session: Any,
                                                            tmp_path: Path) -> None:
    from app import create_app

    web = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url, "SECRET_KEY": "x",
                      "SCRM_EMBEDDED_WORKER": True})
    web.instance_path = str(tmp_path)
    assert EMBEDDED_KEY not in web.extensions  # created, not serving: no worker (flask db, shell…)
    try:
        client = web.test_client()
        assert client.get("/livez").status_code == 200
        pid, worker, scheduler = web.extensions[EMBEDDED_KEY]
        assert pid == os.getpid() and worker.thread.is_alive() and scheduler.running
        client.get("/livez")
        assert web.extensions[EMBEDDED_KEY][1] is worker  # once per process
    finally:
        state = web.extensions.get(EMBEDDED_KEY)
        if state:
            state[1].stop()
            state[2].shutdown(wait=False)
            state[1].thread.join(timeout=5)
        dispose_engines(web)
    off = create_app({**TEST_SETTINGS, "DATABASE_URL": database_url, "SECRET_KEY": "x",
                      "SCRM_EMBEDDED_WORKER": False})
    off.test_client().get("/livez")
    assert EMBEDDED_KEY not in off.extensions
    dispose_engines(off)


@pytest.fixture()
def admin_headers(db_session: Any) -> dict[str, str]:
    from identity.service import create_api_token

    _row, secret = create_api_token(TEST_CORP_ID, "ops", "admin", None)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_healthz_reports_backlogs_to_an_admin(client: Any, db_session: Any, admin_headers: dict[str, str]) -> None:
    old = _event(1)
    _event(2)
    db_session.execute(InboxEvent.__table__.update().where(InboxEvent.id == old)
                       .values(received_at=utcnow() - dt.timedelta(hours=1)))
    command = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": "e"})
    command.status, command.last_error, command.done_at = "failed", "errcode=40068 invalid tag", utcnow()
    db_session.commit()
    assert client.get("/healthz").get_json() == {"status": "degraded"}  # no figures to the public
    body = client.get("/healthz", headers=admin_headers).get_json()
    assert body["status"] == "degraded"
    assert body["inbox"]["pending"] == 2 and body["inbox"]["oldest_pending_age_s"] >= 3599
    assert body["outbox"]["failed"] == 1 and body["outbox"]["failed_recently"]["count"] == 1
    assert any(r.startswith("inbox: the oldest pending event") for r in body["degraded"])
    assert not any(r.startswith("outbox") for r in body["degraded"])  # one failed command: look, not degraded
    assert any("40068" in a for a in body["attention"])


def test_healthz_is_degraded_while_wecom_fails_not_after_one_bad_callback(client: Any, db_session: Any,
                                                                         admin_headers: dict[str, str]) -> None:
    bad = db_session.get(InboxEvent, _event(1))
    bad.status, bad.last_error, bad.processed_at = "failed", "KeyError: 'ExternalUserID'", utcnow()
    db_session.commit()
    assert client.get("/healthz").get_json() == {"status": "ok"}  # one bad callback
    assert any("KeyError" in a for a in client.get("/healthz", headers=admin_headers).get_json()["attention"])
    # WeCom answers 502: three commands are waiting to retry, none has failed for good yet
    for n in range(3):
        cmd = enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": f"e{n}"})
        cmd.attempts, cmd.last_error = 1, "errcode=-3 HTTP 502 (/cgi-bin/externalcontact/mark_tag)"
        cmd.next_attempt_at = utcnow() + dt.timedelta(seconds=4)
    db_session.commit()
    assert client.get("/healthz").get_json() == {"status": "degraded"}
    body = client.get("/healthz", headers=admin_headers).get_json()
    assert any("WeCom is failing now" in r and "502" in r for r in body["degraded"])


# ---------------------------------------------------------------- kill -9 mid-burst


def _flask(args: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=log)


@pytest.fixture()
def emu_wired(app: Any, db_session: Any, live_server: Any) -> Iterator[Any]:
    from wecom.emulator import Emulator

    emulator = Emulator(corp_id=TEST_CORP_ID, contact_secret=TEST_SETTINGS["WECOM_CONTACT_SECRET"],
                        agent_id=TEST_SETTINGS["WECOM_AGENT_ID"], agent_secret=TEST_SETTINGS["WECOM_AGENT_SECRET"],
                        token=TEST_SETTINGS["WECOM_TOKEN"], encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"],
                        callback_url=live_server.url + "/wecom/callback", seed=None,
                        callback_backoff=(0.05, 0.1, 0.2)).start(host="127.0.0.1", port=0)
    try:
        yield emulator
    finally:
        emulator.stop()


def test_kill_9_mid_burst_applies_every_event_exactly_once(app: Any, db_session: Any, emu_wired: Any,
                                                           database_url: str, tmp_path: Path) -> None:
    emu = emu_wired
    env = {**os.environ, **{k: str(v) for k, v in TEST_SETTINGS.items()}, "DATABASE_URL": database_url,
           "WECOM_API_BASE": emu.url, "SCRM_EMBEDDED_WORKER": "0", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    burst = 200
    emu.act.add_staff("zhangsan", "张三")
    log_path = tmp_path / "worker.log"
    log = log_path.open("ab")
    worker = _flask(["worker", "--lease", "2", "--poll", "0.05", "--batch", "5", "--no-scheduler"], env, log)
    try:
        for i in range(burst):
            emu.act.customer_adds_staff("zhangsan", name=f"客户{i}", welcome_code=(i % 4 == 0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill it once it is busy, mid-burst
            db_session.rollback()
            if db_session.scalar(select(func.count()).select_from(InboxEvent)
                                 .where(InboxEvent.status == "done")) >= burst // 5:
                break
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at_done = db_session.scalar(select(func.count()).select_from(InboxEvent)
                                           .where(InboxEvent.status == "done"))
        assert killed_at_done < burst  # it really died mid-burst
        assert emu.wait_idle(60)
        worker = _flask(["worker", "--lease", "2", "--poll", "0.05", "--batch", "5", "--no-scheduler"], env, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            db_session.rollback()
            if db_session.scalar(select(func.count()).select_from(InboxEvent)
                                 .where(InboxEvent.status != "done")) == 0 and \
                    db_session.scalar(select(func.count()).select_from(InboxEvent)) == burst:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)  # a clean stop
        assert worker.wait(15) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
        log.close()
    db_session.rollback()
    events = db_session.scalars(select(InboxEvent)).all()
    assert len(events) == burst and {e.status for e in events} == {"done"}
    applied = [a.detail["inbox_id"] for a in db_session.scalars(select(AuditLog).where(AuditLog.actor == "wecom"))]
    assert sorted(applied) == sorted(e.id for e in events)  # each applied exactly once
    assert db_session.scalar(select(func.count()).select_from(FollowRelation)
                             .where(FollowRelation.status == "active")) == burst
    assert db_session.scalar(select(func.count()).select_from(Customer)) == burst


def test_a_worker_is_woken_by_postgres_when_another_process_queues_work(app: Any, db_session: Any) -> None:
    """LISTEN/NOTIFY: the insert comes from another connection (as from a web process), the worker
    polls only every 30 s, and still handles the row at once."""
    from core.db import db

    if db.engine.dialect.name != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's; the embedded SQLite worker is woken in memory")
    worker = Worker(app, poll_interval=30.0, lease=30)
    assert worker.listen() is not None
    assert worker.listener is not None and worker.listener.connected.wait(10)
    worker.start_thread()
    try:
        time.sleep(0.3)  # the worker found nothing and sleeps for its 30 s poll
        plaintext = event_xml(TEST_CORP_ID, 1795000001, "change_external_contact", "transfer_fail",
                              [("FailReason", "customer_refused"), ("UserID", "u"), ("ExternalUserID", "wm" + "7" * 30)])
        with db.engine.begin() as other:  # not store_event: no in-process wake hook is involved
            other.execute(InboxEvent.__table__.insert().values(
                corp_id=TEST_CORP_ID, payload_hash="f" * 64, event="change_external_contact", change_type="transfer_fail",
                payload=plaintext, data=parse_xml(plaintext), received_at=utcnow(), duplicates=0, status="pending",
                attempts=0, next_attempt_at=utcnow()))
        started = time.monotonic()
        while time.monotonic() - started < 5:
            db_session.rollback()
            if db_session.scalar(select(InboxEvent.status).where(InboxEvent.payload_hash == "f" * 64)) == "done":
                break
            time.sleep(0.05)
        assert time.monotonic() - started < 5, "not woken: the event waited for the poll"
    finally:
        worker.stop()
        assert worker.thread is not None
        worker.thread.join(10)
