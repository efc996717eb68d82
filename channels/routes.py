"""Console pages of the channels (渠道活码), for marketers and managers: the list (with the States no channel
knows, to name them, and recent alerts), the form to create and edit a channel, its QR code, the
attribution report with its chart and CSV; and the public page `/l/<token>` a customer opens from a
tracked link (no sign-in: the token's signature is the proof)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from core.db import db
from core.errors import ScrmError
from core.time import CHINA
from core.uow import mark_failed
from crm.models import Staff
from identity.web import principal, require_role
from tagging.catalog.service import tag_catalog
from tagging.lifecycle.stages import stage_names

from . import alerts, radar, reports, service
from .api import period
from .models import ACTIVE, PAUSED

bp = Blueprint("channels", __name__, url_prefix="/console/channels", template_folder="templates",
               static_folder="static", static_url_path="/static")
links_bp = Blueprint("channel_links", __name__, template_folder="templates")

ROLES = service.ROLES


def _form_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": form.get("name", ""), "users": [u for u in form.getlist("users") if u],
                            "skip_verify": form.get("skip_verify") == "1",
                            "welcome_text": form.get("welcome_text", ""),
                            "tag_ids": [t for t in form.getlist("tag_ids") if t],
                            "cost": form.get("cost") or None}
    if form.get("owner_userid"):
        body["owner_userid"] = form["owner_userid"]
    return body


def _choices(corp_id: str) -> dict[str, Any]:
    staff = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id, Staff.status == "active")
                               .order_by(Staff.name, Staff.userid)).all()
    return {"staff": [{"userid": u, "name": n or u} for u, n in staff], "catalog": tag_catalog(corp_id, include_empty=False)}


@bp.get("/")
@require_role(*ROLES)
def index() -> Any:
    p = principal()
    channels = service.list_channels(p)
    names = dict(db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == p.corp_id)).tuples().all())
    return render_template("channels/index.html", channels=channels, labels=service.STATUS_LABELS,
                           unknown=service.unknown_states(p.corp_id), names=names,
                           alerts=alerts.recent_alerts(p.corp_id, 10))


@bp.route("/new", methods=["GET", "POST"])
@require_role(*ROLES)
def new() -> Any:
    p = principal()
    if request.method == "POST":
        try:
            channel = service.create(p, _form_body(request.form))
        except ScrmError as exc:
            mark_failed()
            flash(exc.message, "error")
            return render_template("channels/form.html", channel=None, form=request.form, **_choices(p.corp_id)), 422
        flash("已创建渠道活码，企业微信生成二维码后即可下载", "ok")
        return redirect(url_for(".detail", channel_id=channel.id))
    return render_template("channels/form.html", channel=None, form={"skip_verify": "1"}, **_choices(p.corp_id))


@bp.route("/<id:channel_id>", methods=["GET", "POST"])
@require_role(*ROLES)
def detail(channel_id: int) -> Any:
    p = principal()
    channel = service.get_channel(p, channel_id)
    if request.method == "POST":
        body = _form_body(request.form)
        if channel.sync_state == service.EXTERNAL:  # its staff are set in WeCom's admin console
            body.pop("users"), body.pop("skip_verify")
        try:
            service.update(p, channel, body)
        except ScrmError as exc:
            mark_failed()
            flash(exc.message, "error")
        else:
            flash("已保存", "ok")
        return redirect(url_for(".detail", channel_id=channel_id))
    form = {"name": channel.name, "users": channel.users, "skip_verify": "1" if channel.skip_verify else "",
            "welcome_text": channel.welcome_text, "tag_ids": channel.tag_ids,
            "cost": str(channel.cost) if channel.cost is not None else "", "owner_userid": channel.owner_userid}
    return render_template("channels/form.html", channel=channel, info=service.channel_dict(channel), form=form,
                           **_choices(p.corp_id))


@bp.post("/<id:channel_id>/status")
@require_role(*ROLES)
def change_status(channel_id: int) -> Any:
    p = principal()
    channel = service.get_channel(p, channel_id)
    action = request.form.get("action")
    try:
        if action == "retire":
            service.retire(p, channel)
            flash("已停用渠道活码：企业微信中的二维码将被删除", "ok")
        elif action in (ACTIVE, PAUSED):
            service.update(p, channel, {"status": action})
            flash("已暂停：二维码仍可添加，但不再发送本渠道欢迎语、不自动打标签" if action == PAUSED else "已恢复", "ok")
    except ScrmError as exc:
        mark_failed()
        flash(exc.message, "error")
    return redirect(url_for(".detail", channel_id=channel_id))


@bp.post("/states")
@require_role(*ROLES)
def name_state() -> Any:
    p = principal()
    try:
        if request.form.get("adopt") == "1":
            channel = service.adopt_state(p, request.form.get("state"), request.form.get("name"))
        else:
            name = service.name_state(p, request.form.get("state"), request.form.get("name"))
    except ScrmError as exc:
        mark_failed()
        flash(exc.message, "error")
    else:
        if request.form.get("adopt") == "1":
            flash(f"已设为渠道活码「{channel.name}」，可设置欢迎语和标签", "ok")
            return redirect(url_for(".detail", channel_id=channel.id))
        flash(f"已命名为「{name}」", "ok")
    return redirect(url_for(".index"))


def _day(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.get("/report")
@require_role(*ROLES)
def report() -> Any:
    p = principal()
    lo, hi = period(_day(request.args.get("from")), _day(request.args.get("to")))
    stages = stage_names(p.corp_id)
    stage = request.args.get("stage") or None
    data = reports.report(p.corp_id, lo, hi, stage=stage if stage in stages else None)
    rows = data["channels"][:20]
    chart = {"labels": [r["name"] for r in rows], "legend": True,
             "datasets": [{"label": "新增", "values": [r["added"] for r in rows], "color": "#1a6fd6"},
                          {"label": "7天留存", "values": [r["kept_7"] for r in rows], "color": "#07c160"},
                          {"label": "30天留存", "values": [r["kept_30"] for r in rows], "color": "#13c2c2"},
                          {"label": "流失", "values": [r["lost"] for r in rows], "color": "#e5484d"}]}
    start, end = lo.astimezone(CHINA).date(), hi.astimezone(CHINA).date() - dt.timedelta(days=1)
    return render_template("channels/report.html", data=data, chart=chart, start=start, end=end, stages=stages,
                           stage=data["stage"])


@bp.get("/report.csv")
@require_role(*ROLES)
def report_csv() -> Any:
    p = principal()
    lo, hi = period(_day(request.args.get("from")), _day(request.args.get("to")))
    data = reports.report(p.corp_id, lo, hi, stage=request.args.get("stage") or None)
    response = Response(stream_with_context(reports.report_csv(data)), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=channels.csv"
    return response


# ---------------------------------------------------------------- the customer's side of a tracked link


@links_bp.get("/l/<token>")
def open_link(token: str) -> Any:
    """A customer opens a tracked link: recorded and redirected when the signature is ours; otherwise a
    plain page saying the link is not valid, and nothing recorded."""
    if len(token) > 600:
        return _invalid()
    link = radar.open_link(token)
    if link is None:
        return _invalid()
    return redirect(link.url, code=302)


def _invalid() -> tuple[str, int]:
    return render_template("channels/link_invalid.html"), 404


