"""The bulk tag API: a tag edit of many customers as one job, a rule's backfill, and their progress."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from core.db import db
from core.errors import NotFound
from identity.web import principal, require_role

from ..rules.service import get_rule
from . import service
from .models import TagJob
from .schemas import BulkEditIn, JobOut

bp = ApiBlueprint("bulk_api", __name__, url_prefix="/api/v1", description="批量打标签与规则回溯任务")

ROLES = ("admin", "manager", "marketer")


@bp.post("/tags/bulk")
@require_role(*ROLES)
@bp.arguments(BulkEditIn)
@bp.response(202, JobOut)
def bulk_edit(data: dict[str, Any]) -> dict[str, Any]:
    """One job that sends one `mark_tag` per active relation of the matching customers."""
    p = principal()
    job = service.start_bulk_edit(p.corp_id, p.actor, add=data["add"], remove=data["remove"],
                                  filter=data.get("filter"), external_userids=data.get("external_userids"),
                                  userid=data.get("userid"))
    service.start_after_commit(job)
    return service.job_dict(job)


@bp.get("/tags/jobs/<id:job_id>")
@require_role(*ROLES)
@bp.response(200, JobOut)
def get_job(job_id: int) -> dict[str, Any]:
    """A bulk edit or backfill with its progress."""
    job = db.session.get(TagJob, job_id)
    if job is None or job.corp_id != principal().corp_id:
        raise NotFound("任务不存在")
    return service.job_dict(job)


@bp.post("/rules/<id:rule_id>/backfill")
@require_role("admin", "marketer")
@bp.response(202, JobOut)
def backfill(rule_id: int) -> dict[str, Any]:
    """Apply the rule to every existing customer it matches, as a job."""
    p = principal()
    rule = get_rule(p.corp_id, rule_id)
    if rule is None:
        raise NotFound("规则不存在")
    job = service.start_backfill(rule, p.actor)
    service.start_after_commit(job)
    return service.job_dict(job)
