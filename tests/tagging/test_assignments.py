"""Bulk tag edits: one job with progress over many customers, one mark_tag per relation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select

from crm.models import Customer, FollowRelation, Tag, TagAssignment, TagGroup
from tests.helpers import TEST_CORP_ID


def test_bulk_edit_of_many_customers_is_one_job_with_progress(db_session: Any, app: Any) -> None:
    from tagging.bulk.service import job_dict, run_job, start_bulk_edit
    from wecom.models import OutboxCommand

    n = 1200
    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etG", name="活动")
    db_session.add(group)
    db_session.flush()
    tag = Tag(corp_id=TEST_CORP_ID, tag_id="etVIP", group_pk=group.id, name="双十一")
    db_session.add(tag)
    db_session.execute(insert(Customer), [{"corp_id": TEST_CORP_ID, "external_userid": f"wm{i}", "name": f"客户{i}"}
                                          for i in range(n)])
    ids = list(db_session.scalars(select(Customer.id)))
    db_session.execute(insert(FollowRelation), [{"corp_id": TEST_CORP_ID, "customer_id": cid, "userid": "zhangsan",
                                                 "state": "double11" if cid % 2 else ""} for cid in ids])
    db_session.commit()
    job = start_bulk_edit(TEST_CORP_ID, "marketer1", add=["etVIP"], remove=[], filter={"state": "double11"})
    db_session.commit()
    assert job_dict(job)["percent"] == 0 and job.total == n // 2
    done = run_job(job.id)
    assert done is not None and job_dict(done) | {} and (done.status, done.done, done.changed) == ("done", n // 2, n // 2)
    assert job_dict(done)["percent"] == 100
    assert db_session.scalar(select(func.count()).select_from(OutboxCommand)) == n // 2
    assert db_session.scalar(select(func.count()).select_from(TagAssignment)) == n // 2
    assert run_job(job.id) is None  # finished jobs are not run twice


def test_bulk_edit_api_runs_in_the_background(db_session: Any, app: Any, client: Any) -> None:
    import time

    from identity.service import create_api_token

    group = TagGroup(corp_id=TEST_CORP_ID, group_id="etG", name="活动")
    db_session.add(group)
    db_session.flush()
    db_session.add(Tag(corp_id=TEST_CORP_ID, tag_id="etVIP", group_pk=group.id, name="双十一"))
    c = Customer(corp_id=TEST_CORP_ID, external_userid="wm1", name="甲")
    db_session.add(c)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan"))
    _, secret = create_api_token(TEST_CORP_ID, "crm", "marketer")
    db_session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    r = client.post("/api/v1/tags/bulk", json={"add": ["etVIP"], "external_userids": ["wm1"]}, headers=headers)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/tags/jobs/{job_id}", headers=headers).get_json()
        if body["status"] == "done":
            break
        time.sleep(0.05)
    assert body["status"] == "done" and body["changed"] == 1 and body["percent"] == 100
    bad = client.post("/api/v1/tags/bulk", json={"add": ["etNOPE"], "external_userids": ["wm1"]}, headers=headers)
    assert bad.status_code == 422
