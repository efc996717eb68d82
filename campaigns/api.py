"""The campaigns API: compose, preview, read, cancel, remind, export results; uploads for attachments;
the corp's campaign settings. Marketers (and admins) for the whole corp; managers within their team."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from core.api import ApiBlueprint, csv_download
from core.db import utcnow
from core.errors import UserValueError
from crm.service import audit
from identity.web import principal, require_role

from . import media, service
from .planning import corp_settings
from .schemas import (CampaignDetailOut, CampaignEmptyIn, CampaignIn, CampaignListOut, CampaignListQuery,
                      CampaignPreviewIn, CampaignPreviewOut, CampaignRecipientsOut, CampaignRecipientsQuery,
                      CampaignReminderResultOut, CampaignSettingsIn, CampaignSettingsOut, CampaignUploadFiles,
                      CampaignUploadOut, CampaignUploadQuery)
from .sending import reminders_in_day

bp = ApiBlueprint("campaigns_api", __name__, url_prefix="/api/v1", description="群发（企业群发给客户和客户群）")

ROLES = service.ROLES


@bp.before_request
def _allow_uploads() -> None:
    """Attachments may be larger than the app's request limit (kept small for callbacks)."""
    if request.endpoint == "campaigns_api.upload":
        request.max_content_length = media.MAX_UPLOAD + (64 << 10)


@bp.get("/campaigns")
@require_role(*ROLES)
@bp.arguments(CampaignListQuery, location="query")
@bp.response(200, CampaignListOut)
def list_campaigns(args: dict[str, Any]) -> dict[str, Any]:
    """Campaigns, newest first, with status, counts and delivery rate (a page; `before` for the next)."""
    rows = service.list_campaigns(principal(), status=args["status"], before=args["before"], limit=args["limit"])
    return {"campaigns": [service.campaign_dict(c) for c in rows],
            "next_before": rows[-1].id if len(rows) == args["limit"] else None}


@bp.post("/campaigns")
@require_role(*ROLES)
@bp.arguments(CampaignIn)
@bp.response(201, CampaignDetailOut)
def create_campaign(data: dict[str, Any]) -> dict[str, Any]:
    """Compose a campaign: sent at `send_at` (now when absent) to the audience as it is then."""
    campaign = service.create(principal(), data)
    return service.detail(campaign)


@bp.post("/campaigns/preview")
@require_role(*ROLES)
@bp.arguments(CampaignPreviewIn)
@bp.response(200, CampaignPreviewOut)
def preview_campaign(data: dict[str, Any]) -> dict[str, Any]:
    """How many it would reach if sent now, who is excluded and why (lost, quota, no sender), senders and calls."""
    return service.preview(principal(), data)


@bp.get("/campaigns/<id:campaign_id>")
@require_role(*ROLES)
@bp.response(200, CampaignDetailOut)
def get_campaign(campaign_id: int) -> dict[str, Any]:
    """One campaign: progress, counts, per-sender figures, its WeCom tasks and reminders."""
    return service.detail(service.get_campaign(principal(), campaign_id))


@bp.get("/campaigns/<id:campaign_id>/recipients")
@require_role(*ROLES)
@bp.arguments(CampaignRecipientsQuery, location="query")
@bp.response(200, CampaignRecipientsOut)
def list_recipients(args: dict[str, Any], campaign_id: int) -> dict[str, Any]:
    """Per-customer (per-chat) results, a page at a time (`after` = the previous page's `next_after`)."""
    campaign = service.get_campaign(principal(), campaign_id)
    rows, next_after = service.recipients_page(campaign, status=args["status"], after=args["after"],
                                               limit=args["limit"])
    return {"recipients": rows, "next_after": next_after}


@bp.get("/campaigns/<id:campaign_id>/results.csv")
@require_role(*ROLES)
@bp.response(200, content_type="text/csv", description="每位客户（客户群）的结果，UTF-8 CSV")
def export_results(campaign_id: int) -> Response:
    """Every recipient's result as CSV (streamed)."""
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    audit(p.corp_id, p.actor, "campaign.export", "campaign", str(campaign.id), {})
    return csv_download(service.export_csv(campaign), service.export_filename(campaign))


@bp.post("/campaigns/<id:campaign_id>/cancel")
@require_role(*ROLES)
@bp.arguments(CampaignEmptyIn)
@bp.response(200, CampaignDetailOut)
def cancel_campaign(data: dict[str, Any], campaign_id: int) -> dict[str, Any]:
    """Cancel: before sending nothing is sent; while sending, what WeCom has not sent yet is withdrawn."""
    p = principal()
    campaign = service.cancel_campaign(p, service.get_campaign(p, campaign_id))
    return service.detail(campaign)


@bp.post("/campaigns/<id:campaign_id>/remind")
@require_role(*ROLES)
@bp.arguments(CampaignEmptyIn)
@bp.response(202, CampaignReminderResultOut)
def remind_senders(data: dict[str, Any], campaign_id: int) -> dict[str, Any]:
    """Remind the senders who have not confirmed yet (at most 3 times in 24 hours; the 4th is refused)."""
    p = principal()
    campaign = service.get_campaign(p, campaign_id)
    reminder = service.remind_senders(p, campaign)
    return {"id": reminder.id, "at": reminder.at.isoformat(), "tasks": reminder.tasks,
            "in_last_24h": len(reminders_in_day(campaign.id, utcnow()))}


@bp.post("/campaigns/uploads")
@require_role(*ROLES)
@bp.arguments(CampaignUploadQuery, location="query")
@bp.arguments(CampaignUploadFiles, location="files")
@bp.response(201, CampaignUploadOut)
def upload(args: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """Upload an image (JPG/PNG ≤10 MB), video (MP4 ≤10 MB) or file (≤20 MB) for attachments (field `media`)."""
    p = principal()
    stored = files.get("media")
    if stored is None or not hasattr(stored, "read"):
        raise UserValueError("请上传文件（表单字段 media）", field="media")
    row = media.save_upload(p.corp_id, p.actor, args["kind"], stored.filename or "", stored.mimetype or "",
                            stored.read())
    return media.upload_dict(row)


@bp.get("/campaigns/settings")
@require_role("marketer")
@bp.response(200, CampaignSettingsOut)
def get_settings() -> dict[str, Any]:
    """The receive quota per customer (per China day or natural month) and the follow window."""
    return service.settings_dict(corp_settings(principal().corp_id))


@bp.put("/campaigns/settings")
@require_role("marketer")
@bp.arguments(CampaignSettingsIn)
@bp.response(200, CampaignSettingsOut)
def put_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Change the receive quota and the follow window (applies to campaigns planned from now on)."""
    p = principal()
    return service.settings_dict(service.save_settings(p.corp_id, p.actor, **data))
