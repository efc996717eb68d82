"""Console pages of the tag catalog: groups and tags with usage counts, unused and near-duplicate tags,
refused changes; create, rename, delete and merge (admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from core.errors import UserValueError
from core.uow import mark_failed
from identity.web import principal, require_role

from ..assignments.service import failed_changes
from . import service

bp = Blueprint("tag_catalog", __name__, url_prefix="/console/tags", template_folder="templates")

ROLES = ("admin", "marketer")


@bp.get("/", endpoint="catalog")
@require_role(*ROLES)
def catalog_page() -> Any:
    p = principal()
    return render_template("tagging/tag_catalog.html", groups=service.list_catalog(p.corp_id),
                           unused=service.unused_tags(p.corp_id), dupes=service.near_duplicates(p.corp_id),
                           failed=failed_changes(p.corp_id, 20))


@bp.post("/action")
@require_role("admin")
def action() -> Any:
    p, form = principal(), request.form
    what = form.get("action")
    try:
        if what == "create":
            names = [n for n in (form.get("names") or "").replace("，", ",").split(",") if n.strip()]
            service.create_tags(p.corp_id, p.actor, names, group_id=form.get("group_id") or None,
                                group_name=form.get("group_name") or None)
        elif what == "rename":
            service.rename(p.corp_id, p.actor, form.get("id", ""), form.get("name"))
        elif what == "delete":
            service.delete(p.corp_id, p.actor, form.get("id", ""))
        elif what == "merge":
            service.merge(p.corp_id, p.actor, form.get("id", ""), form.get("into", ""))
        else:
            abort(400)
    except UserValueError as exc:
        mark_failed()
        flash(str(exc), "error")
    else:
        flash("已保存，正在同步到企业微信", "ok")
    return redirect(url_for(".catalog"))
