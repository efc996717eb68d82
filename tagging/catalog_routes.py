"""Console pages of the tag catalog: groups and tags with usage counts, unused and near-duplicate
tags, rename/delete/merge, bulk edit with its progress figure, the drift report."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from console.identity import current_principal, require_role
from crm.service import UserValueError
from extensions import db

from . import catalog, service
from .rule_models import TagJob

bp = Blueprint("tagging_catalog", __name__, url_prefix="/console/tags", template_folder="templates")

ROLES = ("admin", "marketer")


def _p() -> Any:
    principal = current_principal()
    assert principal is not None
    return principal


@bp.get("/", endpoint="catalog")
@require_role(*ROLES)
def catalog_page() -> Any:
    p = _p()
    return render_template("tagging/tag_catalog.html", groups=catalog_groups(p.corp_id),
                           unused=catalog.unused_tags(p.corp_id), dupes=catalog.near_duplicates(p.corp_id),
                           failed=service.failed_changes(p.corp_id, 20))


def catalog_groups(corp_id: str) -> list[dict[str, Any]]:
    return catalog.list_catalog(corp_id)


@bp.post("/action")
@require_role("admin")
def action() -> Any:
    p, form = _p(), request.form
    what = form.get("action")
    try:
        if what == "create":
            names = [n for n in (form.get("names") or "").replace("，", ",").split(",") if n.strip()]
            catalog.create_tags(p.corp_id, p.actor, names, group_id=form.get("group_id") or None,
                                group_name=form.get("group_name") or None)
        elif what == "rename":
            catalog.rename(p.corp_id, p.actor, form.get("id", ""), form.get("name"))
        elif what == "delete":
            catalog.delete(p.corp_id, p.actor, form.get("id", ""))
        elif what == "merge":
            catalog.merge(p.corp_id, p.actor, form.get("id", ""), form.get("into", ""))
        else:
            abort(400)
        db.session.commit()
        flash("已保存，正在同步到企业微信", "ok")
    except UserValueError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for(".catalog"))


@bp.route("/bulk", methods=["GET", "POST"])
@require_role("admin", "manager", "marketer")
def bulk() -> Any:
    p = _p()
    if request.method == "POST":
        exts = [e.strip() for e in (request.form.get("external_userids") or "").split() if e.strip()]
        segment_id = request.form.get("segment_id")
        tree = None
        if segment_id:
            from .segments import get_segment

            segment = get_segment(p.corp_id, int(segment_id))
            tree = segment.filter if segment is not None else None
        try:
            job = service.start_bulk_edit(p.corp_id, p.actor, add=request.form.getlist("add"),
                                          remove=request.form.getlist("remove"), filter=tree,
                                          external_userids=exts or None)
            db.session.commit()
            service.maybe_start(job)
            return redirect(url_for(".job", job_id=job.id))
        except UserValueError as exc:
            db.session.rollback()
            flash(str(exc), "error")
    from .segments import list_segments

    return render_template("tagging/tag_bulk.html", groups=catalog.list_catalog(p.corp_id),
                           segments=list_segments(p.corp_id))


@bp.get("/jobs/<int:job_id>")
@require_role("admin", "manager", "marketer")
def job(job_id: int) -> Any:
    row = db.session.get(TagJob, job_id)
    if row is None or row.corp_id != _p().corp_id:
        abort(404)
    return render_template("tagging/tag_job.html", job=service.job_dict(row))


@bp.route("/drift", methods=["GET", "POST"])
@require_role("admin")
def drift() -> Any:
    from .drift import latest_report, run_report

    p = _p()
    if request.method == "POST":
        from wecom.client import WeComError, contact_client

        try:
            run_report(p.corp_id, contact_client(), do_heal=request.form.get("heal") == "1")
        except WeComError as exc:
            db.session.rollback()
            flash(f"无法读取企业微信：{exc}", "error")
        return redirect(url_for(".drift"))
    return render_template("tagging/tag_drift.html", report=latest_report(p.corp_id))
