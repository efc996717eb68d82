"""Console pages of the campaigns (群发), for marketers (and managers, within their team): the list, the
composer with its live reach and a preview of the message as WeCom shows it, a campaign's detail (progress,
delivery charts, senders, recipients, cancel and remind), the results as CSV, and the corp's settings.

The composer's audience is a saved segment, or conditions picked in the form (`audience_filter` turns them
into F); marketers never see JSON. Attachments are uploaded as they are added (`upload`) and sent with
the form as upload ids.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Mapping

from flask import (Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, stream_with_context,
                   url_for)
from sqlalchemy import func, select

from core.db import db, utcnow
from core.errors import ScrmError, UserValueError
from core.time import CHINA, to_china
from core.uow import mark_failed
from crm.models import GroupChat, Staff
from crm.service import audit
from identity.web import principal, require_role, scope_for
from tagging.catalog.service import tag_catalog
from tagging.lifecycle.stages import stage_names
from tagging.segments.service import list_segments

from . import media, service
from .models import (FOLLOWING, R_DELIVERED, R_NOT_FRIEND, R_QUOTA, R_UNSENT, SCHEDULED, SENDING,
                     T_CREATED, Campaign)
from .planning import corp_settings
from .schemas import RECIPIENT_STATUSES, STATUSES
from .sending import REMINDS_PER_DAY, reminders_in_day, sender_names

bp = Blueprint("campaigns", __name__, url_prefix="/console/campaigns", template_folder="templates",
               static_folder="static", static_url_path="/static")

ROLES = service.ROLES
PAGE_SIZE = 50
LIST_FIELDS = ("tag", "exclude_tag", "stage", "owner", "group_owner", "preferred")


@bp.before_request
def _allow_uploads() -> None:
    """Attachments may be larger than the app's request limit (kept small for callbacks)."""
    if request.endpoint == "campaigns.upload":
        request.max_content_length = media.MAX_UPLOAD + (64 << 10)


# ---------------------------------------------------------------- the form → a campaign body


def _int(value: str | None, label: str, field: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UserValueError(f"{label}应为整数", field=field) from None
    if number < 1:
        raise UserValueError(f"{label}应大于 0", field=field)
    return number


def _day(value: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UserValueError(f"{label}格式不对，应为 YYYY-MM-DD", field="filter") from None


def audience_filter(form: Mapping[str, Any]) -> dict[str, Any]:
    """The composer's conditions → F: tags (WeCom's rule: any within a group, all groups), excluded tags,
    stages, following staff, date added, days without a follow-up."""
    get_list = getattr(form, "getlist", lambda k: form.get(k) or [])
    parts: list[dict[str, Any]] = []
    tags = [t for t in get_list("tag") if t]
    if tags:
        parts.append({"wecom_tags": tags})
    excluded = [t for t in get_list("exclude_tag") if t]
    if excluded:
        parts.append({"not": {"any": [{"tag": t} for t in excluded]}})
    stages = [s for s in get_list("stage") if s]
    if stages:
        parts.append({"stage": [None if s == "__none__" else s for s in stages]})
    owners = [o for o in get_list("owner") if o]
    if owners:
        parts.append({"followed_by": owners})
    if form.get("added_from"):
        parts.append({"added_after": _day(form["added_from"], "添加时间（起）").isoformat()})
    if form.get("added_to"):
        parts.append({"added_before": (_day(form["added_to"], "添加时间（止）") + dt.timedelta(days=1)).isoformat()})
    days = _int(form.get("no_followup_days"), "未跟进天数", "filter")
    if days:
        parts.append({"no_followup_days": days})
    return {"all": parts}


def _send_at(form: Mapping[str, Any]) -> dt.datetime | None:
    if form.get("send_mode") != "later":
        return None
    value = (form.get("send_at") or "").strip()
    if not value:
        raise UserValueError("请选择发送时间", field="send_at")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UserValueError("发送时间格式不对", field="send_at") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=CHINA)).astimezone(dt.timezone.utc)


def _attachments(form: Mapping[str, Any]) -> list[Any]:
    raw = form.get("attachments") or "[]"
    try:
        items = json.loads(raw)
    except ValueError:
        raise UserValueError("附件信息不完整，请重新添加附件", field="attachments") from None
    if not isinstance(items, list):
        raise UserValueError("附件信息不完整，请重新添加附件", field="attachments")
    return items


def form_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The composer's fields → the same body the API takes (checked by `service.clean`)."""
    get_list = getattr(form, "getlist", lambda k: form.get(k) or [])
    chat_type = form.get("chat_type") or "single"
    body: dict[str, Any] = {"name": form.get("name") or "", "chat_type": chat_type, "text": form.get("text") or "",
                            "attachments": _attachments(form), "send_at": _send_at(form),
                            "sender_rule": form.get("sender_rule") or "followup",
                            "preferred_userids": [u for u in get_list("preferred") if u],
                            "tag_id": form.get("tag_id") or None}
    if chat_type == "group":
        body["owners"] = [u for u in get_list("group_owner") if u]
    elif form.get("audience") == "segment":
        body["segment_id"] = _int(form.get("segment_id"), "客户分群", "segment_id")
        if body["segment_id"] is None:
            raise UserValueError("请选择客户分群", field="segment_id")
    else:
        body["filter"] = audience_filter(form)
    return body


def _form_state(form: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {k: form.getlist(k) for k in LIST_FIELDS} if hasattr(form, "getlist") else {}
    state.update({k: v for k, v in form.items() if k not in LIST_FIELDS})
    return state


def _choices(corp_id: str) -> dict[str, Any]:
    p = principal()
    scope = scope_for(p)
    staff_query = select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id, Staff.status == "active")
    if not scope.all:
        staff_query = staff_query.where(Staff.userid.in_(sorted(scope.userids)))
    staff = db.session.execute(staff_query.order_by(Staff.userid)).all()
    chats = dict(db.session.execute(select(GroupChat.owner_userid, func.count()).where(
        GroupChat.corp_id == corp_id, GroupChat.dismissed_at.is_(None)).group_by(GroupChat.owner_userid)).tuples().all())
    return {"groups": tag_catalog(corp_id, include_empty=False), "stages": stage_names(corp_id),
            "staff": [(u, n or u) for u, n in staff], "chat_owners": [(u, n or u, chats.get(u, 0)) for u, n in staff],
            "segments": list_segments(corp_id),
            "settings": corp_settings(corp_id), "rules": service.RULE_LABELS}


# ---------------------------------------------------------------- pages


@bp.get("")
@require_role(*ROLES)
def index() -> Any:
    p = principal()
    status = request.args.get("status") or None
    if status not in STATUSES:
        status = None
    before = request.args.get("before", type=int)
    rows = service.list_campaigns(p, status=status, before=before, limit=PAGE_SIZE)
    creators = sender_names(p.corp_id, [c.creator_userid for c in rows if c.creator_userid])
    items = [{**service.campaign_dict(c), "creator": creators.get(c.creator_userid or "", c.created_by)} for c in rows]
    return render_template("campaigns/index.html", items=items, status=status, statuses=service.STATUS_LABELS,
                           next_before=rows[-1].id if len(rows) == PAGE_SIZE else None,
                           settings=corp_settings(p.corp_id), can_configure=p.has_role("marketer"))


@bp.route("/new", methods=["GET", "POST"])
@require_role(*ROLES)
def compose() -> Any:
    p = principal()
    error = None
    form: dict[str, Any] = {"chat_type": "single", "audience": "filter", "send_mode": "now"}
    if request.method == "POST":
        form = _form_state(request.form)
        try:
            campaign = service.create(p, form_body(request.form))
        except UserValueError as exc:
            mark_failed()
            error = exc.message
        else:
            when = "立即发送" if campaign.send_at <= utcnow() + dt.timedelta(seconds=30) else \
                f"将于 {to_china(campaign.send_at).strftime('%Y-%m-%d %H:%M')} 发送"  # type: ignore[union-attr]
            flash(f"已创建群发「{campaign.name}」，{when}", "ok")
            return redirect(url_for(".detail", campaign_id=campaign.id))
    uploads = {u.id: media.upload_dict(u) for u in _uploads(p.corp_id, form.get("attachments"))}
    return render_template("campaigns/compose.html", form=form, error=error, uploads=uploads,
                           max_attachments=media.MAX_ATTACHMENTS, **_choices(p.corp_id))


def _uploads(corp_id: str, raw: Any) -> list[Any]:
    """The uploads a (possibly unfinished) attachment list names, to show them again in the form."""
    try:
        items = json.loads(raw) if isinstance(raw, str) and raw else raw
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    well_formed = [i for i in items if isinstance(i, dict) and isinstance(i.get("msgtype"), str)
                   and isinstance(i.get(i["msgtype"]), dict)]
    rows = [media.get_upload(corp_id, upload_id) for upload_id in media.upload_ids(well_formed)]
    return [row for row in rows if row is not None]


@bp.post("/preview")
@require_role(*ROLES)
def preview() -> Any:
    """The composer's live reach: the form → a campaign body → the same decisions as planning (JSON)."""
    try:
        body = service.preview(principal(), form_body(request.form))
    except ScrmError as exc:
        return jsonify(error={"code": exc.code, "message": exc.message, "fields": exc.fields}), 400
    return jsonify(body)


@bp.post("/uploads")
@require_role(*ROLES)
def upload() -> Any:
    """An attachment's file, uploaded when it is added to the composer (JSON)."""
    p = principal()
    stored = request.files.get("media")
    try:
        if stored is None:
            raise UserValueError("请选择要上传的文件", field="media")
        row = media.save_upload(p.corp_id, p.actor, request.form.get("kind") or "", stored.filename or "",
                                stored.mimetype or "", stored.read())
    except UserValueError as exc:
        return jsonify(error={"code": exc.code, "message": exc.message, "fields": exc.fields}), 422
    return jsonify({**media.upload_dict(row), "url": url_for(".upload_file", upload_id=row.id)}), 201


@bp.get("/uploads/<id:upload_id>")
@require_role(*ROLES)
def upload_file(upload_id: int) -> Any:
    """An uploaded image (shown in the composer's preview) or file (downloaded)."""
    row = media.get_upload(principal().corp_id, upload_id)
    if row is None:
        abort(404)
    response = Response(row.data, mimetype=row.content_type if row.kind == "image" else "application/octet-stream")
    if row.kind != "image":
        response.headers["Content-Disposition"] = f"attachment; filename=upload-{row.id}"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/<id:campaign_id>")
@require_role(*ROLES)
def detail(campaign_id: int) -> Any:
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    status = request.args.get("status") or None
    if status not in RECIPIENT_STATUSES:
        status = None
    after = max(0, request.args.get("after", type=int) or 0)
    info = service.detail(campaign)
    rows, next_after = service.recipients_page(campaign, status=status, after=after, limit=PAGE_SIZE)
    uploads = {u.id: media.upload_dict(u) for u in _uploads(p.corp_id, campaign.attachments or [])}
    waiting = sum(1 for t in info["tasks"] if t["status"] == T_CREATED)
    return render_template("campaigns/detail.html", c=info, campaign=campaign, rows=rows, next_after=next_after,
                           status=status, after=after, uploads=uploads, charts=_charts(campaign, info),
                           labels=service.RECIPIENT_LABELS, reasons=service.REASON_LABELS, waiting=waiting,
                           can_remind=campaign.status in (SENDING, FOLLOWING) and waiting > 0,
                           reminders_left=max(0, REMINDS_PER_DAY - len(reminders_in_day(campaign.id, utcnow()))),
                           segment=_segment_name(campaign), rule=service.RULE_LABELS.get(campaign.sender_rule, ""),
                           owner_names=sender_names(campaign.corp_id, list(campaign.owners or [])),
                           estimate=service.estimate(campaign) if campaign.status == SCHEDULED else None)


def _segment_name(campaign: Campaign) -> str | None:
    if campaign.segment_id is None:
        return None
    segment = next((s for s in list_segments(campaign.corp_id) if s.id == campaign.segment_id), None)
    return segment.name if segment is not None else "（已删除的分群）"


def _charts(campaign: Campaign, info: dict[str, Any]) -> dict[str, Any]:
    """The detail page's chart data: deliveries over time, and results per sender (the 20 largest)."""
    senders = info["senders"][:20]
    return {"timeline": service.delivery_timeline(campaign),
            "senders": {"labels": [s["name"] for s in senders],
                        "series": [{"label": service.RECIPIENT_LABELS[k], "key": k, "values": [s[k] for s in senders]}
                                   for k in (R_DELIVERED, R_NOT_FRIEND, R_QUOTA, R_UNSENT, "planned")]}}


@bp.get("/<id:campaign_id>/progress")
@require_role(*ROLES)
def progress(campaign_id: int) -> Any:
    """Status and progress for the detail page to follow while planning and sending (JSON)."""
    campaign = service.get_campaign(principal(), campaign_id)
    return jsonify(status=campaign.status, status_label=service.STATUS_LABELS.get(campaign.status, campaign.status),
                   progress=service.progress_of(campaign))


@bp.post("/<id:campaign_id>/cancel")
@require_role(*ROLES)
def cancel(campaign_id: int) -> Any:
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    try:
        service.cancel_campaign(p, campaign)
    except ScrmError as exc:
        mark_failed()
        flash(exc.message, "error")
    else:
        flash("已取消群发：尚未发出的消息不会再发送", "ok")
    return redirect(url_for(".detail", campaign_id=campaign_id))


@bp.post("/<id:campaign_id>/remind")
@require_role(*ROLES)
def remind(campaign_id: int) -> Any:
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    try:
        reminder = service.remind_senders(p, campaign)
    except ScrmError as exc:
        mark_failed()
        flash(exc.message, "error")
    else:
        flash(f"已提醒 {reminder.tasks} 个未确认的发送任务的成员", "ok")
    return redirect(url_for(".detail", campaign_id=campaign_id))


@bp.get("/<id:campaign_id>/export.csv")
@require_role(*ROLES)
def export(campaign_id: int) -> Any:
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    audit(p.corp_id, p.actor, "campaign.export", "campaign", str(campaign.id), {})
    response = Response(stream_with_context(service.export_csv(campaign)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename={service.export_filename(campaign)}"
    return response


@bp.route("/settings", methods=["GET", "POST"])
@require_role("marketer")
def settings_page() -> Any:
    p = principal()
    if request.method == "POST":
        try:
            service.save_settings(p.corp_id, p.actor, quota_count=_int(request.form.get("quota_count"), "接收次数",
                                                                        "quota_count"),
                                  quota_period=request.form.get("quota_period"),
                                  follow_days=_int(request.form.get("follow_days"), "跟踪天数", "follow_days"))
        except UserValueError as exc:
            mark_failed()
            flash(exc.message, "error")
        else:
            flash("已保存群发设置", "ok")
        return redirect(url_for(".settings_page"))
    return render_template("campaigns/settings.html", settings=corp_settings(p.corp_id))
