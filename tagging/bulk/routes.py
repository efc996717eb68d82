"""Console pages of bulk tag jobs: the bulk edit (who: a saved segment, the customer list's filters, or
a pasted list; what: a two-column add/remove tag picker; how many customers it reaches), a job's
progress, a rule's backfill."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from core.db import db
from core.errors import UserValueError
from core.uow import mark_failed
from crm.models import Customer
from identity.web import principal, require_role

from ..catalog.service import list_catalog
from ..lifecycle.stages import MIRROR_GROUP
from ..lifecycle.tiers import TIER_GROUP
from ..rules.service import get_rule
from ..segments.routes import filter_from_form
from ..segments.service import count, get_segment, list_segments
from . import service
from .models import TagJob

bp = Blueprint("tag_bulk", __name__, template_folder="templates")

ROLES = ("admin", "manager", "marketer")
MAX_PASTED = 5000
AUDIENCES = ("segment", "filter", "list")


def _pasted(text: str) -> list[str]:
    """Customer ids pasted one per line (or separated by spaces, commas)."""
    ids = [part.strip() for part in text.replace(",", " ").replace("，", " ").split() if part.strip()]
    if len(ids) > MAX_PASTED:
        raise UserValueError(f"一次最多 {MAX_PASTED} 位客户，请分批处理或使用客户分群")
    return list(dict.fromkeys(ids))


def _audience(corp_id: str, form: Any) -> tuple[dict[str, Any] | None, list[str] | None]:
    """The chosen customers as (filter tree, or pasted ids)."""
    kind = form.get("audience", "segment")
    if kind == "segment":
        segment_id = form.get("segment_id") or ""
        segment = get_segment(corp_id, int(segment_id)) if segment_id.isdigit() else None
        if segment is None:
            raise UserValueError("请选择一个客户分群")
        return segment.filter, None
    if kind == "filter":
        tree = filter_from_form(form)
        if not tree["all"]:
            raise UserValueError("没有筛选条件：请从客户列表筛选后再来，或选择一个客户分群")
        return tree, None
    ids = _pasted(form.get("external_userids") or "")
    if not ids:
        raise UserValueError("请粘贴客户 ID，每行一个")
    return None, ids


def _sizes(p: Any) -> list[dict[str, Any]]:
    """The saved segments with the customers a bulk edit of each reaches (None: its tags were deleted).

    Counted as the job selects them: every customer of the corp the filter matches."""
    out = []
    for segment in list_segments(p.corp_id):
        try:
            size: int | None = count(p.corp_id, segment.filter, None)
        except UserValueError:
            size = None
        out.append({"id": segment.id, "name": segment.name, "size": size})
    return out


@bp.route("/console/tags/bulk", methods=["GET", "POST"])
@require_role(*ROLES)
def bulk() -> Any:
    """Add and remove tags on many customers at once (one background job with progress)."""
    p = principal()
    form = request.form if request.method == "POST" else request.args
    if request.method == "POST":
        try:
            tree, ids = _audience(p.corp_id, form)
            job = service.start_bulk_edit(p.corp_id, p.actor, add=form.getlist("add"), remove=form.getlist("remove"),
                                          filter=tree, external_userids=ids)
        except UserValueError as exc:
            mark_failed()
            flash(f"没有开始：{exc}", "error")
        else:
            service.start_after_commit(job)
            return redirect(url_for(".job", job_id=job.id))
    carried = filter_from_form(request.args) if request.method == "GET" else {"all": []}
    carried_count = count(p.corp_id, carried, None) if carried["all"] else None
    recent = db.session.scalars(select(TagJob).where(TagJob.corp_id == p.corp_id)
                                .order_by(TagJob.id.desc()).limit(5)).all()
    groups = [g for g in list_catalog(p.corp_id) if g["tags"] and g["group_name"] not in (MIRROR_GROUP, TIER_GROUP)]
    return render_template("tagging/tag_bulk.html", groups=groups, system_groups=(MIRROR_GROUP, TIER_GROUP),
                           segments=_sizes(p), form=form, carried=carried_count,
                           carried_fields=[(k, v) for k in request.args for v in request.args.getlist(k)]
                           if carried["all"] else [],
                           recent=[service.job_dict(j) for j in recent])


@bp.post("/console/tags/bulk/count")
@require_role(*ROLES)
def bulk_count() -> Any:
    """How many customers a pasted list names (the page's count as the text changes)."""
    p = principal()
    try:
        ids = _pasted(request.form.get("external_userids") or "")
    except UserValueError as exc:
        return {"error": {"code": "invalid", "message": str(exc), "fields": {}}}, 400
    found = db.session.scalar(select(func.count()).select_from(Customer).where(
        Customer.corp_id == p.corp_id, Customer.external_userid.in_(ids))) if ids else 0
    return {"given": len(ids), "found": int(found or 0)}


@bp.get("/console/tags/jobs/<id:job_id>")
@require_role(*ROLES)
def job(job_id: int) -> Any:
    row = db.session.get(TagJob, job_id)
    if row is None or row.corp_id != principal().corp_id:
        abort(404)
    rule = get_rule(row.corp_id, int(row.params["rule_id"])) if row.kind == "backfill" else None
    return render_template("tagging/tag_job.html", job=service.job_dict(row), params=row.params, rule=rule,
                           names={t["tag_id"]: t["name"] for g in list_catalog(row.corp_id, include_deleted=True)
                                  for t in g["tags"]})


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
