"""On-job handovers (在职转接): WeCom's limits checked from local history before anything is sent, the notice
text, and the requests refused in plain words."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from core.db import utcnow
from handover.models import HandoverCustomer, TransferLog
from tests.handover.conftest import ONJOB_TRANSFER, corp_of, people, settle
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import token


def test_the_preview_excludes_twice_in_90_days_and_already_in_transfer_and_the_rest_is_sent(
        app: Any, db_session: Any, client: Any, wired: Any, admin: dict[str, str]) -> None:
    emu = wired
    corp = corp_of(db_session, emu, people(6, "zhangsan"))
    twice, busy = corp.ext(0), corp.ext(1)
    for days in (80, 10):  # moved twice in the last 90 days (WeCom would answer 40128)
        db_session.add(TransferLog(corp_id=TEST_CORP_ID, subject="customer", target=twice, kind="onjob",
                                   handover_userid="lisi", takeover_userid="zhangsan",
                                   started_at=utcnow() - dt.timedelta(days=days)))
    db_session.commit()
    first = client.post("/api/v1/handovers", headers=admin, json={
        "kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["lisi"], "external_userids": [busy]})
    assert first.status_code == 201, first.get_data(as_text=True)
    settle(app, db_session, emu)  # its transfer is running: WeCom would answer 40129

    body = {"kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["wangwu"],
            "notice": "您好，我换岗了，王五会继续为您服务"}
    preview = client.post("/api/v1/handovers/preview", json=body, headers=admin).get_json()
    assert preview["customers"] == {"total": 6, "movable": 4, "excluded": 2}
    excluded = {e["external_userid"]: e for e in preview["excluded"]}
    assert excluded[twice]["reason"] == "40128" and "90 天内" in excluded[twice]["reason_text"]
    assert excluded[busy]["reason"] == "40129" and "正在转接" in excluded[busy]["reason_text"]
    assert preview["calls"] == {"customers": 1, "chats": 0}

    job = client.post("/api/v1/handovers", json=body, headers=admin).get_json()
    settle(app, db_session, emu)
    assert emu.call_count(ONJOB_TRANSFER) == 2  # the first job's call and this one's
    rows = dict(db_session.execute(select(HandoverCustomer.external_userid, HandoverCustomer.status)
                                   .where(HandoverCustomer.job_id == job["id"])).tuples().all())
    assert rows == {twice: "excluded", busy: "excluded", **{corp.ext(i): "waiting" for i in range(2, 6)}}


@pytest.mark.parametrize("body, field, words", [
    ({"kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["zhangsan"]}, "takeover_userids", "40130"),
    ({"kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": []}, "takeover_userids", "1 到 20"),
    ({"kind": "resigned", "handover_userid": "zhangsan", "takeover_userids": ["lisi"]}, "kind", "尚未离职"),
    ({"kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["lisi"], "notice": "字" * 201}, "notice", ""),
    ({"kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": "lisi"}, "takeover_userids", ""),
    ({"kind": "later", "handover_userid": "zhangsan", "takeover_userids": ["lisi"]}, "kind", ""),
])
def test_bad_requests_are_refused_naming_the_field(db_session: Any, client: Any, emu: Any, admin: dict[str, str],
                                                   body: dict[str, Any], field: str, words: str) -> None:
    corp_of(db_session, emu, people(2, "zhangsan"))
    for path in ("/api/v1/handovers/preview", "/api/v1/handovers"):
        answer = client.post(path, json=body, headers=admin)
        assert answer.status_code in (400, 422), answer.get_data(as_text=True)
        error = answer.get_json()["error"]
        assert any(k == field or k.startswith(field) for k in error["fields"]), error
        assert words in error["message"] + str(error["fields"])
    assert db_session.scalar(select(HandoverCustomer.id)) is None


def test_only_managers_and_admins_hand_over(db_session: Any, client: Any, emu: Any) -> None:
    corp_of(db_session, emu, people(2, "zhangsan"))
    staff = token(db_session, "staff", "lisi", name="staff")
    answer = client.post("/api/v1/handovers/preview", headers=staff, json={
        "kind": "onjob", "handover_userid": "zhangsan", "takeover_userids": ["lisi"]})
    assert answer.status_code == 403 and answer.get_json()["error"]["message"]
    assert client.get("/api/v1/handovers", headers=staff).status_code == 403
