"""Pages of customers (客户): the list (`console.customers`), a customer (`console.customer`), and the CSV
export with its progress page and download."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, flash, jsonify, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import distinct, select
from werkzeug.datastructures import MultiDict

from core.db import db
from core.errors import UserValueError
from crm.models import FollowRelation, Staff
from identity.service import Principal
from identity.web import login_required, principal, scope_for
from tagging.catalog.service import tag_catalog
from tagging.lifecycle import stages, tiers

from ..labels import channel_names, staff_names
from ..routes import bp
from . import exports, listing
from . import service as customers

TAGS_SHOWN = 4


def _choices(p: Principal) -> dict[str, Any]:
    """What the filters offer: tags by group, stages, the staff in scope (by name), channels, tiers."""
    scope = scope_for(p)
    staff = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == p.corp_id,
                                                                      Staff.status != "resigned")
                               .order_by(Staff.name, Staff.userid)).tuples().all()
    owners = [(u, n or u) for u, n in staff if scope.allows(u)]
    states = db.session.scalars(select(distinct(FollowRelation.state)).where(
        FollowRelation.corp_id == p.corp_id, FollowRelation.state != "").order_by(FollowRelation.state).limit(200)).all()
    names = channel_names(p.corp_id)
    return {"groups": tag_catalog(p.corp_id, include_empty=False), "stages": stages.stage_names(p.corp_id),
            "owners": owners, "states": [(s, names.get(s) or s) for s in states], "tiers": tiers.TIERS}


def _picked(form: dict[str, Any], choices: dict[str, Any]) -> dict[str, str]:
    """The drop-downs' summaries: what is chosen in each, in words."""
    tag_names = {t["tag_id"]: t["name"] for g in choices["groups"] for t in g["tags"]}
    owners, states = dict(choices["owners"]), dict(choices["states"])

    def words(values: list[str], names: dict[str, str] | None = None) -> str:
        shown = [(names or {}).get(v, "未设置" if v == "__none__" else v) for v in values]
        return "、".join(shown[:3]) + (f" 等 {len(shown)} 项" if len(shown) > 3 else "")

    return {"tag": words(form["tag"], tag_names), "stage": words(form["stage"]), "owner": words(form["owner"], owners),
            "state": words(form["state"], states), "tier": words(form["tier"])}


def _query_args(args: MultiDict[str, str], **changes: Any) -> dict[str, Any]:
    """The current query string as url_for arguments (lists kept), with some values changed."""
    out: dict[str, Any] = {k: args.getlist(k) for k in args if k != "cursor"}
    out.update(changes)
    return {k: v for k, v in out.items() if v not in (None, "", [])}


@bp.get("/customers", endpoint="customers")
@login_required("console")
def customers_page() -> Any:
    """The customer list: search, filters, sort, keyset pages, export."""
    p = principal()
    args = request.args
    choices = _choices(p)
    form = listing.form_of(args)
    error, page, count = None, {"rows": [], "next_cursor": ""}, 0
    try:
        params = listing.params_from_args(args)
        page = listing.list_page(p, params, args.get("cursor", ""))
        count = listing.total(p, params)
    except UserValueError as exc:
        if "cursor" in exc.fields:
            flash(str(exc), "error")
            return redirect(url_for("console.customers", **_query_args(args)))
        error, params = str(exc), listing.ListParams()
    names = channel_names(p.corp_id)
    return render_template("console/customers/list.html", page=page, count=count, params=params, form=form,
                           error=error, picked=_picked(form, choices), channel_names=names, tags_shown=TAGS_SHOWN,
                           sorts=listing.SORTS, statuses=listing.STATUSES, args=args, query_args=_query_args,
                           export_fields=[(k, v) for k in args if k != "cursor" for v in args.getlist(k)],
                           **choices)


# Registered before the customer page, so that "exports" is never taken for a customer id.
@bp.post("/customers/export")
@login_required("console")
def customer_export() -> Any:
    """Export the list as it is filtered now (a job; its page shows the progress and the download)."""
    p = principal()
    try:
        params = listing.params_from_args(request.form)
    except UserValueError as exc:
        flash(f"无法导出：{exc}", "error")
        return redirect(url_for("console.customers"))
    job = exports.start_export(p, params)
    exports.start_after_commit(job)
    return redirect(url_for("console.export_page", export_id=job.id))


def _export(export_id: int) -> Any:
    job = exports.get_export(principal(), export_id)
    if job is None:
        abort(404)
    return job


@bp.get("/customers/exports/<id:export_id>")
@login_required("console")
def export_page(export_id: int) -> Any:
    """An export's progress, then its download link."""
    job = _export(export_id)
    return render_template("console/customers/export.html", job=exports.export_dict(job))


@bp.get("/customers/exports/<id:export_id>/status")
@login_required("console")
def export_status(export_id: int) -> Any:
    """The progress as JSON, for the page to poll."""
    return jsonify(exports.export_dict(_export(export_id)))


@bp.get("/customers/exports/<id:export_id>/download")
@login_required("console")
def export_download(export_id: int) -> Any:
    """The finished CSV, streamed part by part."""
    job = _export(export_id)
    if job.status != "done":
        flash("导出还没有完成，请稍候", "error")
        return redirect(url_for("console.export_page", export_id=export_id))
    stamp = job.created_at.strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(exports.file_parts(export_id)), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=customers-{stamp}.csv; "
                               f"filename*=UTF-8''%E5%AE%A2%E6%88%B7%E5%88%97%E8%A1%A8-{stamp}.csv"})


@bp.get("/customers/<external_userid>")
@login_required("console")
def customer(external_userid: str) -> Any:
    """A customer: the sidebar's 360° view, the relation history, tag changes and stage history."""
    p = principal()
    found = customers.load(p, external_userid)
    data = customers.page(p, found)
    profile = data["profile"]
    groups: dict[str, list[str]] = {}
    for f in profile["follow_users"]:
        if f["status"] == "active":
            for t in f["tags"]:
                names = groups.setdefault(t["group_name"], [])
                if t["name"] not in names:
                    names.append(t["name"])
    return render_template("console/customers/detail.html", c=profile, data=data, tag_groups=list(groups.items()),
                           chat_owners=staff_names(p.corp_id, {g["owner_userid"] for g in profile["group_chats"]}),
                           back=request.referrer if _from_list(request.referrer) else url_for("console.customers"))


def _from_list(referrer: str | None) -> bool:
    """Back to the list as it was filtered, when the customer was opened from it (this server's page)."""
    if not referrer:
        return False
    parts = urlsplit(referrer)
    return parts.netloc == request.host and parts.path == url_for("console.customers")
