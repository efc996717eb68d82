"""Bulk tag jobs: a tag edit of many customers (a segment, or a list) and the backfill of a rule, each one
job with progress that commits a chunk of customers at a time and resumes where it stopped.

A job is recorded in the request (flush) and started once the request's commit made it visible, in a
thread of that process; the periodic runner (`jobs.py`) picks up jobs whose process died.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from flask import Flask, current_app
from sqlalchemy import false, func, select, update

from core.db import db, rowcount, utcnow
from core.errors import UserValueError
from core.uow import after_commit
from crm.models import Customer, FollowRelation
from crm.service import audit

from ..assignments.service import change_relation_tags, tags_by_id
from ..rules.models import TagRule
from ..rules.service import apply_rule, candidates, dry_run
from ..segments.service import compile_filter, validate_filter
from .models import TagJob

log = logging.getLogger("scrm.tagging.bulk")

JOB_CHUNK = 200
STALE_JOB = dt.timedelta(minutes=5)


def start_bulk_edit(corp_id: str, actor: str, *, add: list[str], remove: list[str],
                    filter: Any = None, external_userids: list[str] | None = None,
                    userid: str | None = None) -> TagJob:
    """Record a bulk tag edit of many customers as one job (flush); the caller commits and starts it.

    The customers are those matching `filter` (a segment F) or named by `external_userids`; each of
    their active relations (only `userid`'s, when given) gets one `mark_tag`.
    """
    add, remove = [str(t) for t in add or []], [str(t) for t in remove or []]
    if not add and not remove:
        raise UserValueError("请选择要添加或移除的标签")
    tags_by_id(corp_id, add + remove)
    if set(add) & set(remove):
        raise UserValueError("同一个标签不能同时添加和移除")
    if filter is None and not external_userids:
        raise UserValueError("请给出客户分群条件 filter 或客户列表 external_userids")
    if filter is not None:
        validate_filter(corp_id, filter)
    params = {"add": add, "remove": remove, "filter": filter, "userid": userid,
              "external_userids": list(dict.fromkeys(external_userids or []))}
    job = TagJob(corp_id=corp_id, kind="bulk_edit", params=params, status="pending", created_by=actor)
    db.session.add(job)
    db.session.flush()
    job.total = int(db.session.scalar(_count_query(corp_id, params)) or 0)
    audit(corp_id, actor, "tags.bulk_edit", "tag_job", str(job.id), {**params, "total": job.total})
    db.session.flush()
    return job


def _customer_query(corp_id: str, params: dict[str, Any]) -> Any:
    if params.get("rule_id") is not None:
        rule = db.session.get(TagRule, int(params["rule_id"]))
        if rule is None:
            return select(Customer.id).where(false())
        return candidates(rule)
    if params.get("filter") is not None:
        return compile_filter(corp_id, params["filter"])
    return select(Customer.id).where(Customer.corp_id == corp_id,
                                     Customer.external_userid.in_(params.get("external_userids") or []))


def _count_query(corp_id: str, params: dict[str, Any]) -> Any:
    return select(func.count()).select_from(_customer_query(corp_id, params).subquery())


def _claim_job(job_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(TagJob).where(TagJob.id == job_id,
                             (TagJob.status == "pending") | ((TagJob.status == "running")
                                                             & (TagJob.heartbeat_at < now - STALE_JOB)))
        .values(status="running", heartbeat_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return rowcount(result) == 1


def run_job(job_id: int) -> TagJob | None:
    """Run (or resume) a tag job to its end, committing a chunk of customers at a time; None if someone
    else holds it. Per-customer refusals (a lost relation) are counted as skipped, not fatal."""
    if not _claim_job(job_id):
        return None
    job = db.session.get(TagJob, job_id)
    assert job is not None
    try:
        while True:
            ids = list(db.session.scalars(_customer_query(job.corp_id, job.params)
                                          .where(Customer.id > job.cursor).order_by(Customer.id).limit(JOB_CHUNK)))
            if not ids:
                break
            changed, skipped = _run_chunk(job, ids)
            job.cursor, job.done = ids[-1], job.done + len(ids)
            job.changed, job.skipped = job.changed + changed, job.skipped + skipped
            job.heartbeat_at = utcnow()
            db.session.commit()
        job.status, job.finished_at = "done", utcnow()
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        job = db.session.get(TagJob, job_id)
        assert job is not None
        job.status, job.error, job.finished_at = "failed", f"{exc.__class__.__name__}: {exc}", utcnow()
        db.session.commit()
        log.exception("tagging.job.failed id=%s", job_id)
    log.info("tagging.job.finished id=%s status=%s done=%s changed=%s", job.id, job.status, job.done, job.changed)
    return job


def _run_chunk(job: TagJob, customer_ids: list[int]) -> tuple[int, int]:
    if job.kind == "backfill":
        return _backfill_chunk(job, customer_ids)
    params = job.params
    query = select(FollowRelation).where(FollowRelation.customer_id.in_(customer_ids),
                                         FollowRelation.status == "active").order_by(FollowRelation.id)
    if params.get("userid"):
        query = query.where(FollowRelation.userid == params["userid"])
    changed = skipped = 0
    for relation in db.session.scalars(query).all():
        try:  # change_relation_tags refuses before it writes anything, so no savepoint is needed
            command = change_relation_tags(job.corp_id, relation, params["add"], params["remove"],
                                           job.created_by, "bulk", detail={"job_id": job.id})
        except UserValueError:
            skipped += 1
            continue
        changed += command is not None
    return changed, skipped


def job_dict(job: TagJob) -> dict[str, Any]:
    """A job as the API and the console's progress figure show it."""
    percent = 100 if job.status == "done" else (int(job.done * 100 / job.total) if job.total else 0)
    return {"id": job.id, "kind": job.kind, "status": job.status, "total": job.total, "done": job.done,
            "changed": job.changed, "skipped": job.skipped, "percent": percent, "error": job.error,
            "created_by": job.created_by, "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def start_job_thread(app: Flask, job_id: int) -> threading.Thread:
    """Run the (committed) job in a background thread of this process; the periodic runner picks up
    jobs whose process died."""
    def target() -> None:
        with app.app_context():
            try:
                run_job(job_id)
            finally:
                db.session.remove()

    thread = threading.Thread(target=target, name=f"tag-job-{job_id}", daemon=True)
    thread.start()
    return thread


def run_pending_jobs(corp_id: str) -> int:
    """Run every pending (or stale running) job of the corp; how many ran."""
    now = utcnow()
    ids = list(db.session.scalars(select(TagJob.id).where(
        TagJob.corp_id == corp_id,
        (TagJob.status == "pending") | ((TagJob.status == "running") & (TagJob.heartbeat_at < now - STALE_JOB)))
        .order_by(TagJob.id)))
    db.session.rollback()
    return sum(1 for job_id in ids if run_job(job_id) is not None)


def start_after_commit(job: TagJob) -> None:
    """Once the request's commit made the job visible, run it in a thread of this process (unless the app
    runs tag jobs only from the scheduler); the periodic runner picks up jobs whose process died."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("TAGGING_JOBS_INLINE", True):
        job_id = job.id
        after_commit(lambda: start_job_thread(app, job_id))


# ---------------------------------------------------------------- rule backfills


def start_backfill(rule: TagRule, actor: str) -> TagJob:
    """Apply the rule to every existing customer it matches, as a background job; flushes."""
    total = dry_run(rule)["matched"]
    job = TagJob(corp_id=rule.corp_id, kind="backfill", params={"rule_id": rule.id}, status="pending",
                 total=total, created_by=actor)
    db.session.add(job)
    db.session.flush()
    audit(rule.corp_id, actor, "rule.backfill", "tag_rule", str(rule.id), {"job_id": job.id, "total": total})
    return job


def _backfill_chunk(job: TagJob, customer_ids: list[int]) -> tuple[int, int]:
    rule = db.session.get(TagRule, int(job.params["rule_id"]))
    if rule is None or rule.deleted_at is not None:
        return 0, len(customer_ids)
    changed = sum(1 for cid in customer_ids if apply_rule(rule, cid, "backfill"))
    return changed, 0
