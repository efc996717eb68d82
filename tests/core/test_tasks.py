"""The durable task queue: a task runs once after its transaction commits, retries what may pass, keeps
what failed for good with its error, and `flask tasks replay` puts failures back."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from core.models import Task
from core.tasks import claim_tasks, enqueue_task, process_task, register_task
from tests.helpers import TEST_CORP_ID


class Flaky(Exception):
    transient = True


@pytest.fixture()
def seen(app: Any) -> Iterator[list[Any]]:
    calls: list[Any] = []

    def handler(task: Task) -> None:
        calls.append(task.payload)
        if task.payload.get("fail") == "always":
            raise ValueError("cannot be done")
        if task.payload.get("fail") == "once" and len(calls) == 1:
            raise Flaky("wecom busy")

    register_task(app, "test.kind", handler)
    yield calls
    app.extensions["scrm.tasks.handlers"].pop("test.kind")


def test_a_task_runs_in_the_worker_once(db_session: Any, seen: list[Any]) -> None:
    enqueue_task(TEST_CORP_ID, "test.kind", {"n": 1})
    assert seen == []  # queued, not run by the caller
    db_session.commit()
    (task_id,) = claim_tasks("w")
    assert process_task(task_id, "w") == "done"
    assert process_task(task_id, "w") == "skipped"
    assert seen == [{"n": 1}] and db_session.get(Task, task_id).status == "done"


def test_a_transient_failure_is_retried_a_permanent_one_kept_with_its_error(db_session: Any, seen: list[Any],
                                                                           runner: Any) -> None:
    flaky = enqueue_task(TEST_CORP_ID, "test.kind", {"fail": "once"})
    bad = enqueue_task(TEST_CORP_ID, "test.kind", {"fail": "always"})
    db_session.commit()
    outcomes = {i: process_task(i, "w", retry_base=0.0) for i in claim_tasks("w")}
    assert outcomes == {flaky.id: "retry", bad.id: "failed"}
    db_session.expire_all()
    assert "cannot be done" in (db_session.get(Task, bad.id).last_error or "")
    (again,) = claim_tasks("w")
    assert process_task(again, "w") == "done"
    listed = runner.invoke(args=["tasks", "list", "--failed"])
    assert listed.exit_code == 0 and "cannot be done" in listed.output
    replayed = runner.invoke(args=["tasks", "replay"])
    assert replayed.exit_code == 0 and "1 task(s)" in replayed.output
    db_session.expire_all()
    assert db_session.get(Task, bad.id).status == "pending"


def test_a_kind_without_a_handler_fails_visibly(db_session: Any) -> None:
    task = enqueue_task(TEST_CORP_ID, "nobody.handles", {})
    db_session.commit()
    (task_id,) = claim_tasks("w")
    assert process_task(task_id, "w") == "failed"
    db_session.expire_all()
    assert "no handler" in (db_session.get(Task, task.id).last_error or "")


def test_a_pending_dedupe_key_is_one_task(db_session: Any) -> None:
    first = enqueue_task(TEST_CORP_ID, "test.kind", {}, dedupe_key="k")
    assert enqueue_task(TEST_CORP_ID, "test.kind", {}, dedupe_key="k").id == first.id
