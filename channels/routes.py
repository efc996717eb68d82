"""Console pages of the channels (渠道活码), for marketers and managers: the list (with the States no channel
knows, to name them, and recent alerts), the form to create and edit a channel, its QR code, the
attribution report with its chart and CSV; and the public page `/l/<token>` a customer opens from a
tracked link (no sign-in: the token's signature is the proof)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from core.db import db
from core.api import csv_download
from core.errors import ScrmError
from core.time import CHINA
from core.uow import mark_failed
from crm.models import GroupChat, GroupChatMember, Staff
from identity.web import principal, require_role
from tagging.catalog.service import tag_catalog
from tagging.lifecycle.stages import stage_names

from . import alerts, radar, reports, service
from .api import period
from .models import ACTIVE, CONTACT, JOIN, PAUSED

bp = Blueprint("channels", __name__, url_prefix="/console/channels", template_folder="templates",
               static_folder="static", static_url_path="/static")
links_bp = Blueprint("channel_links", __name__, template_folder="templates")

ROLES = service.ROLES
LINK_ROWS = 3  # link attachments the form offers (the API takes up to 9)


def _form_body(form: Any, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": form.get("name", ""), "kind": kind,
                            "tag_ids": [t for t in form.getlist("tag_ids") if t], "cost": form.get("cost") or None}
    if kind == JOIN:
        body.update(chat_ids=[c for c in form.getlist("chat_ids") if c],
                    auto_create_room=form.get("auto_create_room") == "1",
                    room_base_name=form.get("room_base_name") or None,
                    room_base_id=int(form["room_base_id"]) if (form.get("room_base_id") or "").isdigit() else None)
    else:
        links = [{"title": form.get(f"link_title_{i}", "").strip(), "url": form.get(f"link_url_{i}", "").strip()}
                 for i in range(LINK_ROWS)]
        body.update(users=[u for u in form.getlist("users") if u], skip_verify=form.get("skip_verify") == "1",
                    welcome_text=form.get("welcome_text", ""),
                    welcome_attachments=[link for link in links if link["title"] or link["url"]])
    if form.get("owner_userid"):
        body["owner_userid"] = form["owner_userid"]
    return body


def _choices(corp_id: str) -> dict[str, Any]:
    staff = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id, Staff.status == "active")
                               .order_by(Staff.name, Staff.userid)).all()
    names = {u: n or u for u, n in staff}
    members = (select(GroupChatMember.chat_pk, func.count().label("n")).where(
        GroupChatMember.corp_id == corp_id, GroupChatMember.left_at.is_(None)).group_by(GroupChatMember.chat_pk).subquery())
    chats = db.session.execute(
        select(GroupChat.chat_id, GroupChat.name, GroupChat.owner_userid, func.coalesce(members.c.n, 0))
        .outerjoin(members, members.c.chat_pk == GroupChat.id)
        .where(GroupChat.corp_id == corp_id, GroupChat.dismissed_at.is_(None), GroupChat.owner_userid.in_(list(names)))
        .order_by(GroupChat.name, GroupChat.chat_id).limit(500)).all()
    return {"staff": [{"userid": u, "name": n} for u, n in names.items()],
            "chats": [{"chat_id": c, "name": n or "未命名的群", "owner": names.get(o, o), "members": int(m)}
                      for c, n, o, m in chats],
            "catalog": tag_catalog(corp_id, include_empty=False)}


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
    kind = JOIN if (request.form.get("kind") or request.args.get("kind")) == JOIN else CONTACT
    if request.method == "POST":
        try:
            channel = service.create(p, _form_body(request.form, kind))
        except ScrmError as exc:
            mark_failed()
            flash(exc.message, "error")
            return render_template("channels/form.html", channel=None, kind=kind, form=request.form,
                                   link_rows=LINK_ROWS, **_choices(p.corp_id)), 422
        flash("已创建渠道活码，企业微信生成二维码后即可下载", "ok")
        return redirect(url_for(".detail", channel_id=channel.id))
    return render_template("channels/form.html", channel=None, kind=kind, form={"skip_verify": "1", "room_base_id": "1"},
                           link_rows=LINK_ROWS, **_choices(p.corp_id))


@bp.route("/<id:channel_id>", methods=["GET", "POST"])
@require_role(*ROLES)
def detail(channel_id: int) -> Any:
    p = principal()
    channel = service.get_channel(p, channel_id)
    if request.method == "POST":
        body = _form_body(request.form, channel.kind)
        body.pop("kind")
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
            "cost": str(channel.cost) if channel.cost is not None else "", "owner_userid": channel.owner_userid,
            "chat_ids": channel.chat_ids, "auto_create_room": "1" if channel.auto_create_room else "",
            "room_base_name": channel.room_base_name or "", "room_base_id": str(channel.room_base_id or 1)}
    for i, attachment in enumerate(service.channel_dict(channel)["welcome_attachments"][:LINK_ROWS]):
        form[f"link_title_{i}"], form[f"link_url_{i}"] = attachment.get("title", ""), attachment.get("url", "")
    return render_template("channels/form.html", channel=channel, kind=channel.kind, info=service.channel_dict(channel),
                           form=form, link_rows=LINK_ROWS, **_choices(p.corp_id))


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
    return csv_download(reports.report_csv(data), reports.csv_filename(lo, hi))


# ---------------------------------------------------------------- the interaction radar's links


@bp.route("/links", methods=["GET", "POST"])
@require_role(*ROLES)
def links() -> Any:
    """Tracked links (互动雷达): the ones staff can send from the sidebar, with who opened them; add one."""
    p = principal()
    form: Any = {}
    if request.method == "POST":
        try:
            link = radar.create_link(p, request.form.get("title"), request.form.get("url"))
        except ScrmError as exc:
            mark_failed()
            flash(exc.message, "error")
            form = request.form
        else:
            flash(f"已添加「{link.title}」：销售可在侧边栏发送给客户", "ok")
            return redirect(url_for(".links"))
    rows = [radar.link_dict(x) for x in radar.list_links(p)]
    names = dict(db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == p.corp_id)).tuples().all())
    status = 422 if form else 200
    return render_template("channels/links.html", links=rows, form=form, names=names), status


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


