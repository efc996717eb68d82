"""Handovers from start to end against the emulator over HTTP: WeCom's calls, its 24 h clock, its callbacks
(transfer_fail, del_external_contact with DELETE_BY_TRANSFER), the poll of transfer_result, and what moves
with each customer."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from crm.models import FollowRelation, FollowUp, GroupChat, Staff
from handover.following import poll_due
from handover.models import HandoverChat, HandoverCustomer, HandoverJob, TransferLog
from tests.handover.conftest import (CHAT_TRANSFER, RESIGNED_TRANSFER, RESULT_PATHS, corp_of, people, settle)
from tests.helpers import TEST_CORP_ID
from wecom.client import contact_client
from wecom.models import OutboxCommand

DAY = 86400


def _statuses(db_session: Any, job_id: int) -> Counter[str]:
    return Counter(db_session.scalars(select(HandoverCustomer.status).where(HandoverCustomer.job_id == job_id)))


def test_a_resigned_colleague_with_1050_customers_and_30_chats_to_three_colleagues(
        app: Any, db_session: Any, client: Any, wired: Any, admin: dict[str, str]) -> None:
    emu = wired
    corp = corp_of(db_session, emu, people(1050, "laowang", tags=["VIP"], others={0: "lisi", 1: "lisi"}))
    for i in range(30):
        emu.act.group_chat_created("laowang", ["zhangsan"], f"老王的客户群{i:02d}")
    settle(app, db_session, emu)
    assert db_session.scalar(select(func.count()).select_from(GroupChat)) == 30

    # 老王 leaves: WeCom's address-book callback marks him resigned, and the waiting list is read from WeCom
    emu.act.staff_resigns("laowang")
    settle(app, db_session, emu)
    assert db_session.scalar(select(Staff.status).where(Staff.userid == "laowang")) == "resigned"
    waiting = client.get("/api/v1/handovers/unassigned?handover_userid=laowang&limit=100", headers=admin).get_json()
    assert [(s["userid"], s["customers"], s["chats"]) for s in waiting["staff"]] == [("laowang", 1050, 30)]
    assert len(waiting["customers"]) == 100 and waiting["next_after"] == 100 and len(waiting["chats"]) == 30

    body = {"kind": "resigned", "handover_userid": "laowang", "takeover_userids": ["zhangsan", "lisi", "wangwu"],
            "distribution": "even", "group_chats": True}
    preview = client.post("/api/v1/handovers/preview", json=body, headers=admin).get_json()
    assert preview["customers"] == {"total": 1050, "movable": 1050, "excluded": 0}, preview["customers"]
    assert preview["calls"]["customers"] == 11 and preview["chats"]["movable"] == 30
    assert [(t["userid"], t["customers"], t["calls"], t["chats"]) for t in preview["takeovers"]] == [
        ("zhangsan", 400, 4, 10), ("lisi", 350, 4, 10), ("wangwu", 300, 3, 10)]

    answer = client.post("/api/v1/handovers", json=body, headers=admin)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    job_id = answer.get_json()["id"]
    # some customers will refuse, and WeCom caps members below what 张三 is given
    for i in (10, 20, 30):
        emu.act.customer_refuses_transfer(corp.ext(i))
    settle(app, db_session, emu)
    assert emu.call_count(RESIGNED_TRANSFER) == 11
    sizes = [len(c.args["external_userids"]) for c in db_session.scalars(
        select(OutboxCommand).where(OutboxCommand.kind == "handover_customers"))]
    assert max(sizes) <= 100 and sum(sizes) == 1050
    assert _statuses(db_session, job_id)["waiting"] == 1050
    assert emu.call_count(CHAT_TRANSFER) == 3  # 30 chats, one call per new owner
    assert Counter(db_session.scalars(select(HandoverChat.status))) == {"done": 30}
    assert {c.owner for c in emu.state.group_chats.values()} == {"zhangsan", "lisi", "wangwu"}

    given = Counter(db_session.scalars(select(HandoverCustomer.takeover_userid).where(
        HandoverCustomer.status == "waiting")))
    emu.act.customer_limit_set(given["zhangsan"] - 5)  # a cap for every member: only 张三 reaches it
    emu.clock.advance(DAY + 60)  # WeCom takes the customers over 24 h later: its callbacks reach us
    settle(app, db_session, emu, timeout=120)
    reads = sum(emu.call_count(p) for p in RESULT_PATHS)
    assert poll_due(TEST_CORP_ID, dt.datetime.now(dt.timezone.utc), contact_client(), force=True) == 3
    assert sum(emu.call_count(p) for p in RESULT_PATHS) - reads == 3  # one page of ≤1,000 per pair
    settle(app, db_session, emu)

    statuses = _statuses(db_session, job_id)
    # 张三 was given 400, 3 of them refuse, 395 is the cap: 2 end at the limit
    assert statuses == {"done": 1045, "refused": 3, "limit": 2}, statuses
    job = db_session.get(HandoverJob, job_id)
    assert job.status == "done" and job.counts["open"] == 0 and job.counts["percent"] == 100
    reasons = {r["reason"]: r for r in client.get(f"/api/v1/handovers/{job_id}", headers=admin).get_json()["failures"]}
    assert "客户拒绝" in reasons["refused"]["reason_text"] and "上限" in reasons["takeover_limit"]["reason_text"]

    # nothing is counted as lost: the old relations ended by transfer, the new ones are active
    lost = Counter(db_session.scalars(select(FollowRelation.lost_reason).where(FollowRelation.userid == "laowang",
                                                                                FollowRelation.status == "lost")))
    assert set(lost) <= {"transferred"}, lost
    active = db_session.scalar(select(func.count()).select_from(FollowRelation).where(
        FollowRelation.userid.in_(("zhangsan", "lisi", "wangwu")), FollowRelation.status == "active"))
    assert active >= 1045
    assert db_session.scalar(select(func.count()).select_from(TransferLog).where(TransferLog.subject == "customer")) == 1050
    # the takeover and the manager are told (app messages through the outbox)
    told = {tuple(m["touser"]) for m in emu.state.messages if "客户交接" in str(m)}
    assert {("zhangsan",), ("lisi",), ("wangwu",)} <= told
    # each taken-over customer has the handover note in their history
    notes = db_session.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.content.like("%转接%")))
    assert notes == 1045


def test_chats_of_a_resigned_owner_move_once_and_a_failure_reads_in_plain_words(
        app: Any, db_session: Any, client: Any, wired: Any, admin: dict[str, str]) -> None:
    emu = wired
    corp_of(db_session, emu, people(3, "laowang"))
    kept = emu.act.group_chat_created("laowang", ["zhangsan"], "老客户群")
    other = emu.act.group_chat_created("laowang", ["zhangsan"], "新品群")
    emu.act.staff_customer_contact("lisi", False)  # 李四 cannot own customer chats (84074 per chat)
    emu.act.staff_resigns("laowang")
    settle(app, db_session, emu)
    body = {"kind": "resigned", "handover_userid": "laowang", "takeover_userids": ["lisi"], "group_chats": True}
    job_id = client.post("/api/v1/handovers", json=body, headers=admin).get_json()["id"]
    settle(app, db_session, emu)
    chats = client.get(f"/api/v1/handovers/{job_id}/chats", headers=admin).get_json()
    failed = [c for c in chats["chats"] if c["status"] == "failed"]
    assert {c["chat_id"] for c in failed} == {kept, other}
    assert all("客户联系权限" in c["reason_text"] for c in failed), failed
    # reassigned to 张三 in one action: the chats and the customers that failed go to him
    answer = client.post(f"/api/v1/handovers/{job_id}/retry", json={"takeover_userids": ["zhangsan"]}, headers=admin)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    settle(app, db_session, emu)
    assert {emu.state.group_chats[c].owner for c in (kept, other)} == {"zhangsan"}
    assert emu.call_count(CHAT_TRANSFER) == 2
    assert Counter(db_session.scalars(select(HandoverCustomer.status).where(HandoverCustomer.job_id == job_id))) == {
        "waiting": 3}
    assert set(db_session.scalars(select(HandoverCustomer.takeover_userid))) == {"zhangsan"}
