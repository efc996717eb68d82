"""A worker killed between WeCom's answer to a transfer call and our commit: the next worker reads
transfer_result before anything in that call is sent again, and the job completes with every customer
transferred exactly once."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from core.db import utcnow
from handover.following import poll_due
from handover.models import HandoverCustomer, HandoverJob
from tests.handover.conftest import ONJOB_TRANSFER, Killed, corp_of, people, settle
from tests.helpers import TEST_CORP_ID
from wecom import commands
from wecom.client import contact_client
from wecom.models import OutboxCommand


def test_a_batch_whose_answer_was_lost_is_reconciled_not_sent_twice(
        app: Any, db_session: Any, client: Any, wired: Any, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    emu = wired
    corp = corp_of(db_session, emu, people(250, "zhangsan"))
    real, answered = commands.COMMANDS["transfer_customer"], []

    def answer_then_die(c: Any, args: Any) -> Any:
        result = real.call(c, args)
        answered.append(result)
        if len(answered) == 2:
            raise Killed()  # WeCom started these 100 transfers; we never learn it
        return result

    monkeypatch.setitem(commands.COMMANDS, "transfer_customer", commands.Command("contact", answer_then_die, False))
    job = client.post("/api/v1/handovers", headers=admin, json={
        "kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["lisi"]}).get_json()
    with pytest.raises(Killed):
        settle(app, db_session, emu)
    monkeypatch.setitem(commands.COMMANDS, "transfer_customer", real)
    assert emu.call_count(ONJOB_TRANSFER) == 2
    db_session.rollback()
    stuck = db_session.scalar(select(OutboxCommand).where(OutboxCommand.sending_at.is_not(None),
                                                          OutboxCommand.status == "pending"))
    assert stuck is not None and len(stuck.args["external_userids"]) == 100

    # the dead worker's lease runs out; another worker asks WeCom first, then sends only what is left
    db_session.execute(update(OutboxCommand).values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    settle(app, db_session, emu)
    assert emu.call_count(ONJOB_TRANSFER) == 3  # 3 calls for 250 customers: the lost one was not repeated
    assert db_session.get(OutboxCommand, stuck.id).result["reconciled"] is True
    started = Counter(t.external_userid for t in emu.state.transfers)
    assert len(started) == 250 and set(started.values()) == {1}  # every customer transferred exactly once
    statuses = Counter(db_session.scalars(select(HandoverCustomer.status).where(HandoverCustomer.job_id == job["id"])))
    assert statuses == {"waiting": 250}

    emu.clock.advance(86400 + 60)
    settle(app, db_session, emu, timeout=120)
    poll_due(TEST_CORP_ID, utcnow(), contact_client(), force=True)
    settle(app, db_session, emu)
    statuses = Counter(db_session.scalars(select(HandoverCustomer.status).where(HandoverCustomer.job_id == job["id"])))
    assert statuses == {"done": 250}
    assert db_session.get(HandoverJob, job["id"]).status == "done"
    assert {t.status for t in emu.state.transfers} == {1} and len(emu.state.transfers) == 250
    assert {corp.ext(i) for i in range(250)} == {t.external_userid for t in emu.state.transfers}
