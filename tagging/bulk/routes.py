"""Console pages of bulk tag jobs: the bulk edit form, a job's progress, a rule's backfill."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from core.db import db
from core.errors import UserValueError
from core.uow import mark_failed
from identity.web import principal, require_role

from ..catalog.service import list_catalog
from ..rules.service import get_rule
from ..segments.service import get_segment, list_segments
from . import service
from .models import TagJob

bp = Blueprint("tag_bulk", __name__, template_folder="templates")


@bp.route("/console/tags/bulk", methods=["GET", "POST"])
@require_role("admin", "manager", "marketer")
def bulk() -> Any:
    p = principal()
    if request.method == "POST":
        exts = [e.strip() for e in (request.form.get("external_userids") or "").split() if e.strip()]
        segment_id = request.form.get("segment_id")
        tree = None
        if segment_id and segment_id.isdigit():
            segment = get_segment(p.corp_id, int(segment_id))
            tree = segment.filter if segment is not None else None
        try:
            job = service.start_bulk_edit(p.corp_id, p.actor, add=request.form.getlist("add"),
                                          remove=request.form.getlist("remove"), filter=tree,
                                          external_userids=exts or None)
        except UserValueError as exc:
            mark_failed()
            flash(str(exc), "error")
        else:
            service.start_after_commit(job)
            return redirect(url_for(".job", job_id=job.id))
    return render_template("tagging/tag_bulk.html", groups=list_catalog(p.corp_id), segments=list_segments(p.corp_id))


@bp.get("/console/tags/jobs/<id:job_id>")
@require_role("admin", "manager", "marketer")
def job(job_id: int) -> Any:
    row = db.session.get(TagJob, job_id)
    if row is None or row.corp_id != principal().corp_id:
        abort(404)
    return render_template("tagging/tag_job.html", job=service.job_dict(row))


@bp.post("/console/rules/<id:rule_id>/backfill")
@require_role("admin", "marketer")
def backfill(rule_id: int) -> Any:
    p = principal()
    rule = get_rule(p.corp_id, rule_id)
    if rule is None:
        abort(404)
    job = service.start_backfill(rule, p.actor)
    service.start_after_commit(job)
    return redirect(url_for(".job", job_id=job.id))
