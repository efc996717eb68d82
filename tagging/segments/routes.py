"""Console pages of tagging part 1: the segment builder and list, stages and value tiers.

Marketers build a segment from form fields (tags by group, stages, owners, channels, dates, "no
follow-up for N days", value tiers, a behaviour condition) and never see JSON: `filter_from_form`
turns the form into F and `form_from_filter` turns a saved F back into the form.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import distinct, func, select

from core.db import db
from core.errors import UserValueError
from core.uow import mark_failed
from crm.models import Customer, FollowRelation, Staff
from crm.service import state_labels
from identity.web import principal as current, require_role, scope_for

from ..catalog.service import tag_catalog
from ..lifecycle import stages, tiers
from . import service as segments
from .service import FilterError

bp = Blueprint("segments", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/segments-static")

SEGMENT_ROLES = ("marketer", "manager")
EVENT_TYPES = {"page_view": "浏览页面", "link_click": "点击链接", "form": "提交表单", "order": "下单"}
LIST_FIELDS = ("tag", "exclude_tag", "stage", "owner", "state", "tier")


def _int(value: str | None, label: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UserValueError(f"{label}应为整数") from None
    if number < 1:
        raise UserValueError(f"{label}应大于 0")
    return number


def filter_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The builder's fields → F (`{"all": [...]}`); empty fields add no condition."""
    get_list = getattr(form, "getlist", lambda k: form.get(k) or [])
    parts: list[dict[str, Any]] = []
    tags = [t for t in get_list("tag") if t]
    if tags:
        parts.append({"wecom_tags": tags})
    excluded = [t for t in get_list("exclude_tag") if t]
    if excluded:
        parts.append({"not": {"any": [{"tag": t} for t in excluded]}})
    chosen_stages = [s for s in get_list("stage") if s]
    if chosen_stages:
        parts.append({"stage": [None if s == "__none__" else s for s in chosen_stages]})
    for field, key in (("owner", "followed_by"), ("state", "state"), ("tier", "tier")):
        values = [v for v in get_list(field) if v]
        if values:
            parts.append({key: values})
    if form.get("added_from"):
        parts.append({"added_after": form["added_from"]})
    if form.get("added_to"):
        try:
            day = dt.date.fromisoformat(form["added_to"])
        except ValueError:
            raise FilterError("added_before", "日期格式不对") from None
        parts.append({"added_before": (day + dt.timedelta(days=1)).isoformat()})  # the end day is included
    days = _int(form.get("no_followup_days"), "未跟进天数")
    if days:
        parts.append({"no_followup_days": days})
    if form.get("event_type"):
        event: dict[str, Any] = {"type": form["event_type"]}
        if form.get("event_path"):
            event["path_prefix"] = form["event_path"].strip()
        count = _int(form.get("event_min_count"), "次数")
        if count:
            event["min_count"] = count
        within = _int(form.get("event_within_days"), "天数")
        if within:
            event["within_days"] = within
        parts.append({"event": event})
    return {"all": parts}


def form_from_filter(tree: Any) -> dict[str, Any] | None:
    """A saved F → the builder's fields; None when F uses shapes the builder cannot show (made by the API)."""
    form: dict[str, Any] = {k: [] for k in LIST_FIELDS}
    if not isinstance(tree, dict) or set(tree) != {"all"} or not isinstance(tree["all"], list):
        return None
    for node in tree["all"]:
        if not isinstance(node, dict) or len(node) != 1:
            return None
        (key, value), = node.items()
        if key == "wecom_tags" and not form["tag"]:
            form["tag"] = list(value)
        elif key == "not" and isinstance(value, dict) and list(value) == ["any"] and not form["exclude_tag"] \
                and all(isinstance(n, dict) and list(n) == ["tag"] for n in value["any"]):
            form["exclude_tag"] = [n["tag"] for n in value["any"]]
        elif key == "stage" and not form["stage"]:
            form["stage"] = ["__none__" if s is None else s for s in value]
        elif key in ("followed_by", "state", "tier") and isinstance(value, list):
            field = {"followed_by": "owner", "state": "state", "tier": "tier"}[key]
            if form[field]:
                return None
            form[field] = list(value)
        elif key == "added_after" and "added_from" not in form and isinstance(value, str) and len(value) == 10:
            form["added_from"] = value
        elif key == "added_before" and "added_to" not in form and isinstance(value, str) and len(value) == 10:
            form["added_to"] = (dt.date.fromisoformat(value) - dt.timedelta(days=1)).isoformat()
        elif key == "no_followup_days" and "no_followup_days" not in form:
            form["no_followup_days"] = value
        elif key == "event" and "event_type" not in form and isinstance(value, dict):
            form.update(event_type=value.get("type"), event_path=value.get("path_prefix") or "",
                        event_min_count=value.get("min_count") or "", event_within_days=value.get("within_days") or "")
        else:
            return None
    return form


def _choices(corp_id: str) -> dict[str, Any]:
    owners = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id,
                                                                       Staff.status != "resigned")
                                .order_by(Staff.userid)).all()
    states = db.session.scalars(select(distinct(FollowRelation.state)).where(
        FollowRelation.corp_id == corp_id, FollowRelation.status == "active", FollowRelation.state != "")
        .order_by(FollowRelation.state).limit(200)).all()
    state_names = state_labels(corp_id)  # channels by name (crm.ChannelLabel), named ones first
    states = sorted(set(states) | set(state_names), key=lambda s: (s not in state_names, state_names.get(s, s)))
    return {"groups": tag_catalog(corp_id, include_empty=False), "stages": stages.stage_names(corp_id), "owners": owners,
            "states": states, "state_names": state_names, "tiers": tiers.TIERS, "event_types": EVENT_TYPES}


@bp.get("/segments")
@require_role(*SEGMENT_ROLES)
def segments_page() -> Any:
    principal = current()
    rows = [(s, segments.segment_size(principal, s)) for s in segments.list_segments(principal.corp_id)]
    return render_template("tagging/segments.html", rows=rows, charts=_overview_charts(principal, rows))


def _overview_charts(principal: Any, rows: list[tuple[Any, int | None]]) -> list[dict[str, Any]]:
    """What marketers compare on the segments page, as bar charts: the customers they may see by
    lifecycle stage and by value tier, and the sizes of the saved segments."""
    scope = scope_for(principal)
    by_stage = dict(db.session.execute(
        select(Customer.stage, func.count()).where(Customer.corp_id == principal.corp_id,
                                                   segments.scope_condition(principal.corp_id, scope))
        .group_by(Customer.stage)).tuples().all())
    names = stages.stage_names(principal.corp_id)
    charts: list[dict[str, Any]] = [{"id": "chart-stages", "title": "客户阶段分布", "label": "客户数",
               "labels": names + ["未设置"], "values": [by_stage.get(n, 0) for n in names] + [by_stage.get(None, 0)]}]
    if scope.all:
        counts = tiers.tier_counts(principal.corp_id)
        if any(counts.values()):
            charts.append({"id": "chart-tiers", "title": "客户价值分层", "label": "客户数",
                           "labels": list(counts), "values": list(counts.values())})
    sized = [(s.name, n) for s, n in rows if n is not None]
    if sized:
        charts.append({"id": "chart-segments", "title": "已保存分群的客户数", "label": "客户数", "horizontal": True,
                       "labels": [name for name, _ in sized], "values": [n for _, n in sized]})
    return charts


@bp.route("/segments/new", methods=["GET", "POST"])
@bp.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@require_role(*SEGMENT_ROLES)
def segment_builder(segment_id: int | None = None) -> Any:
    principal = current()
    segment = None
    if segment_id is not None:
        segment = segments.get_segment(principal.corp_id, segment_id)
        if segment is None:
            abort(404)
    result, error = None, None
    if request.method == "POST":
        form: dict[str, Any] = {k: request.form.getlist(k) for k in LIST_FIELDS}
        form.update({k: v for k, v in request.form.items() if k not in LIST_FIELDS})
        try:
            tree = filter_from_form(request.form)
            if request.form.get("action") == "save":
                saved = segments.save_segment(principal.corp_id, request.form.get("name"), tree, principal.actor,
                                              description=request.form.get("description", ""), segment=segment)
                flash(f"已保存分群：{saved.name}", "ok")
                return redirect(url_for(".segments_page"))
            result = segments.preview(principal, tree)
        except UserValueError as exc:
            mark_failed()
            error = str(exc)
    elif segment is not None:
        form = form_from_filter(segment.filter) or {}
        form.update(name=segment.name, description=segment.description)
    else:
        form = {k: [] for k in LIST_FIELDS}
    return render_template("tagging/builder.html", segment=segment, form=form, result=result, error=error,
                           editable=segment is None or form_from_filter(segment.filter) is not None,
                           **_choices(principal.corp_id))


@bp.post("/segments/count")
@require_role(*SEGMENT_ROLES)
def segment_count() -> Any:
    """The builder's live count: the form's fields → F → preview (JSON)."""
    try:
        body = segments.preview(current(), filter_from_form(request.form))
    except UserValueError as exc:
        return jsonify(error={"code": "invalid_filter", "message": str(exc), "fields": exc.fields}), 400
    return jsonify(body)


@bp.post("/segments/<int:segment_id>/delete")
@require_role(*SEGMENT_ROLES)
def segment_delete(segment_id: int) -> Any:
    principal = current()
    segment = segments.get_segment(principal.corp_id, segment_id)
    if segment is None:
        abort(404)
    segments.delete_segment(segment, principal.actor)
    flash("已删除分群", "ok")
    return redirect(url_for(".segments_page"))
