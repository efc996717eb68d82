"""A command that must not be sent twice (a transfer, a mass message) is marked on its way before it goes
to WeCom; when WeCom's answer is lost, its reconciler reads WeCom before anything is sent again."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from core.db import utcnow
from tests.helpers import TEST_CORP_ID
from wecom.client import WeComError
from wecom.dispatch import RECONCILERS_KEY, CommandView, Reconciled, register_reconciler
from wecom.models import OutboxCommand
from wecom.service import UNKNOWN_OUTCOME, claim_commands, enqueue, process_command

ARGS = {"handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userids": ["wm1"]}


class Client:
    """Sends a transfer; `lose` answers are lost after WeCom acted (a read timeout)."""

    def __init__(self, lose: int = 0) -> None:
        self.sent: list[list[str]] = []
        self.lose = lose

    def transfer_customer(self, handover: str, takeover: str, exts: list[str], msg: str | None = None) -> Any:
        self.sent.append(list(exts))
        if self.lose:
            self.lose -= 1
            raise WeComError(-2, "ReadTimeout", "/cgi-bin/externalcontact/transfer_customer", maybe_sent=True)
        return [{"external_userid": e, "errcode": 0} for e in exts]


@pytest.fixture()
def verdicts(app: Any) -> Iterator[list[Reconciled]]:
    answers: list[Reconciled] = []
    asked: list[CommandView] = []

    def reconcile(view: CommandView, client: Any) -> Reconciled:
        asked.append(view)
        return answers.pop(0)

    register_reconciler(app, "test_transfer", reconcile)
    yield answers
    app.extensions[RECONCILERS_KEY].pop("test_transfer")


def _send(client: Client) -> str:
    (command_id,) = claim_commands("w", 10, 60)
    return process_command(command_id, "w", lambda name: client, retry_base=0.0)


def _command(db_session: Any) -> OutboxCommand:
    db_session.expire_all()
    (command,) = db_session.query(OutboxCommand).all()
    return command


def test_a_lost_answer_is_reconciled_not_resent(db_session: Any, verdicts: list[Reconciled]) -> None:
    enqueue(TEST_CORP_ID, "test_transfer", "transfer_customer", ARGS)
    db_session.commit()
    client = Client(lose=1)
    assert _send(client) == "retry"
    command = _command(db_session)
    assert command.status == "pending" and command.sending_at is not None  # it may have reached WeCom
    verdicts.append(Reconciled("done", result=[{"external_userid": "wm1", "errcode": 0}]))
    assert _send(client) == "done"
    command = _command(db_session)
    assert client.sent == [["wm1"]]  # sent once
    assert command.result == [{"external_userid": "wm1", "errcode": 0}] and command.sending_at is None


def test_a_reconciler_that_finds_nothing_sends_again(db_session: Any, verdicts: list[Reconciled]) -> None:
    enqueue(TEST_CORP_ID, "test_transfer", "transfer_customer", ARGS)
    db_session.commit()
    client = Client(lose=1)
    assert _send(client) == "retry"
    verdicts.append(Reconciled("resend"))
    assert _send(client) == "done"
    assert client.sent == [["wm1"], ["wm1"]] and _command(db_session).status == "done"


def test_a_crash_after_the_mark_is_reconciled_when_the_lease_runs_out(db_session: Any,
                                                                     verdicts: list[Reconciled]) -> None:
    """A worker killed between WeCom's answer and our commit leaves the command pending with `sending_at`."""
    command = enqueue(TEST_CORP_ID, "test_transfer", "transfer_customer", ARGS)
    command.sending_at = utcnow()
    db_session.commit()
    client = Client()
    verdicts.append(Reconciled("done", result=[{"external_userid": "wm1", "errcode": 0}]))
    assert _send(client) == "done"
    assert client.sent == []


def test_without_a_reconciler_an_unknown_outcome_fails_and_is_never_resent(db_session: Any) -> None:
    enqueue(TEST_CORP_ID, "no_reconciler", "transfer_customer", ARGS)
    db_session.commit()
    client = Client(lose=1)
    assert _send(client) == "retry"
    assert _send(client) == "failed"
    command = _command(db_session)
    assert client.sent == [["wm1"]] and UNKNOWN_OUTCOME in (command.last_error or "")


def test_a_repeatable_command_is_simply_sent_again(db_session: Any) -> None:
    enqueue(TEST_CORP_ID, "mark_tag", "mark_tag", {"userid": "u", "external_userid": "e", "add_tag": ["t"]})
    db_session.commit()
    calls: list[Any] = []

    class Marker:
        def mark_tag(self, *args: Any) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise WeComError(-2, "ReadTimeout", "/cgi-bin/externalcontact/mark_tag", maybe_sent=True)

    assert _send(Marker()) == "retry"
    # noted (the first attempt may have taken effect), but no reconciler is asked: repeating it is harmless
    assert _command(db_session).sending_at is not None
    assert _send(Marker()) == "done" and len(calls) == 2
    assert _command(db_session).sending_at is None


def test_a_welcome_whose_answer_was_lost_is_done_when_the_resend_finds_its_code_used(db_session: Any, emu: Any) -> None:
    """The emulator sends the welcome and then answers 503: the retry gets 41051 (code used), which on
    a second attempt means the first one took effect: done, and the customer got it once."""
    from crm.worker import drain
    from flask import current_app

    emu.act.add_staff("zhangsan", "张三")
    emu.act.customer_adds_staff("zhangsan", welcome_code=True)
    code = next(iter(emu.state.welcome_codes))
    emu.faults.add(path="/cgi-bin/externalcontact/send_welcome_msg", http_status=503, after=True)
    command = enqueue(TEST_CORP_ID, "welcome", "send_welcome_msg", {"welcome_code": code, "text": "您好"})
    db_session.commit()
    import time

    from crm.worker import Worker

    worker = Worker(current_app, retry_base=0.01)
    for _ in range(50):  # the retry waits its (short) backoff
        drain(current_app, worker=worker)
        db_session.expire_all()
        row = db_session.get(OutboxCommand, command.id)
        if row.status != "pending":
            break
        time.sleep(0.05)
    assert row.status == "done" and row.result == {"done_by_an_earlier_attempt": True, "errcode": 41051}
    assert len(emu.state.welcome_messages) == 1
