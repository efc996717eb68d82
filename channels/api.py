"""The channels API: channel codes (contact ways, and group-chat join ways) with their staff or chats, State, welcome message and tags; naming
a State made elsewhere; the attribution report (JSON and CSV); tracked links for the interaction radar.
Marketers and managers (and admins) manage channels; any signed-in staff member may share a link."""

from __future__ import annotations

import datetime as dt
from typing import Any


from core.api import ApiBlueprint, csv_download
from core.db import utcnow
from core.time import CHINA
from identity.web import principal, require_role

from . import radar, reports, service
from .schemas import (ChannelIn, ChannelListOut, ChannelListQuery, ChannelOut, ChannelPatch, LinkIn, LinkListOut,
                      LinkOut, LinkShareIn, LinkShareOut, QrCodeOut, ReportOut, ReportQuery, StateNameIn,
                      StateNameOut)

bp = ApiBlueprint("channels_api", __name__, url_prefix="/api/v1", description="渠道活码、渠道归因报表与互动雷达")

ROLES = service.ROLES
LINK_ROLES = ("marketer", "manager", "staff")
DEFAULT_DAYS = 30


@bp.get("/channels")
@require_role(*ROLES)
@bp.arguments(ChannelListQuery, location="query")
@bp.response(200, ChannelListOut)
def list_channels(args: dict[str, Any]) -> dict[str, Any]:
    """Channel codes, newest first, and the States no channel knows (to be named)."""
    p = principal()
    return {"channels": [service.channel_dict(c) for c in service.list_channels(p, status=args["status"])],
            "unknown_states": service.unknown_states(p.corp_id)}


@bp.post("/channels")
@require_role(*ROLES)
@bp.arguments(ChannelIn)
@bp.response(201, ChannelOut)
def create_channel(data: dict[str, Any]) -> dict[str, Any]:
    """Create a channel code: its contact way (kind contact) or join way (kind join) is created in WeCom
    through the outbox (status pending → active)."""
    return service.channel_dict(service.create(principal(), data))


@bp.get("/channels/<id:channel_id>")
@require_role(*ROLES)
@bp.response(200, ChannelOut)
def get_channel(channel_id: int) -> dict[str, Any]:
    """One channel code."""
    return service.channel_dict(service.get_channel(principal(), channel_id))


@bp.patch("/channels/<id:channel_id>")
@require_role(*ROLES)
@bp.arguments(ChannelPatch)
@bp.response(200, ChannelOut)
def patch_channel(data: dict[str, Any], channel_id: int) -> dict[str, Any]:
    """Edit a channel (name, staff or chats, schedule, welcome message, tags, cost), pause or resume it."""
    p = principal()
    return service.channel_dict(service.update(p, service.get_channel(p, channel_id), data))


@bp.delete("/channels/<id:channel_id>")
@require_role(*ROLES)
@bp.response(200, ChannelOut)
def retire_channel(channel_id: int) -> dict[str, Any]:
    """Retire a channel: its way is deleted in WeCom; its history and name stay in the reports."""
    p = principal()
    return service.channel_dict(service.retire(p, service.get_channel(p, channel_id)))


@bp.get("/channels/<id:channel_id>/qrcode")
@require_role(*ROLES)
@bp.response(200, QrCodeOut)
def channel_qrcode(channel_id: int) -> dict[str, Any]:
    """The channel's QR code (WeCom's image URL; null while WeCom is creating it)."""
    channel = service.get_channel(principal(), channel_id)
    return {"qr_code": channel.qr_code, "status": channel.status}


@bp.post("/channels/states")
@require_role(*ROLES)
@bp.arguments(StateNameIn)
@bp.response(200, StateNameOut)
def name_state(data: dict[str, Any]) -> dict[str, Any]:
    """Name a State that no channel knows (a code made in WeCom's admin console): shown everywhere by name;
    `adopt` makes it a channel (welcome message, tags, cost, alerts) whose code stays in WeCom's console."""
    p = principal()
    if data["adopt"]:
        channel = service.adopt_state(p, data["state"], data["name"])
        return {"state": channel.state, "name": channel.name, "channel_id": channel.id}
    return {"state": data["state"], "name": service.name_state(p, data["state"], data["name"]), "channel_id": None}


def period(start: dt.date | None, end: dt.date | None) -> tuple[dt.datetime, dt.datetime]:
    """[from 00:00, to+1 00:00) in China time, as UTC; the last 30 days by default."""
    today = utcnow().astimezone(CHINA).date()
    end = end or today
    start = start or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        start, end = end, start
    lo = dt.datetime.combine(start, dt.time(0), tzinfo=CHINA).astimezone(dt.timezone.utc)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=CHINA).astimezone(dt.timezone.utc)
    return lo, hi


@bp.get("/reports/channels")
@require_role(*ROLES)
@bp.arguments(ReportQuery, location="query")
@bp.response(200, ReportOut)
def channel_report(args: dict[str, Any]) -> Any:
    """Attribution per channel: added, kept after 7/30 days, lost (how soon), reached a stage, tiers, cost."""
    p = principal()
    lo, hi = period(args["from_"], args["to"])
    return reports.report(p.corp_id, lo, hi, stage=args["stage"])


@bp.get("/reports/channels.csv")
@require_role(*ROLES)
@bp.arguments(ReportQuery, location="query")
@bp.response(200, content_type="text/csv", description="每个渠道一行，UTF-8 CSV（与 JSON 报表相同的数字）")
def channel_report_csv(args: dict[str, Any]) -> Any:
    """The attribution report as CSV, for a spreadsheet."""
    p = principal()
    lo, hi = period(args["from_"], args["to"])
    data = reports.report(p.corp_id, lo, hi, stage=args["stage"])
    return csv_download(reports.report_csv(data), reports.csv_filename(lo, hi))


@bp.get("/links")
@require_role(*LINK_ROLES)
@bp.response(200, LinkListOut)
def list_links() -> dict[str, Any]:
    """Tracked links, newest first, with how often they were opened."""
    return {"links": [radar.link_dict(x) for x in radar.list_links(principal())]}


@bp.post("/links")
@require_role(*LINK_ROLES)
@bp.arguments(LinkIn)
@bp.response(201, LinkOut)
def create_link(data: dict[str, Any]) -> dict[str, Any]:
    """A tracked link (an article, a product page, a file): its opens are recorded per customer."""
    return radar.link_dict(radar.create_link(principal(), data["title"], data["url"]))


@bp.post("/links/<id:link_id>/share")
@require_role(*LINK_ROLES)
@bp.arguments(LinkShareIn)
@bp.response(200, LinkShareOut)
def share_link(data: dict[str, Any], link_id: int) -> dict[str, Any]:
    """The signed URL of this link for one customer (the staff member who shares it follows them)."""
    p = principal()
    link = radar.get_link(p, link_id)
    return {"url": radar.share_url(p, link, data["external_userid"], data["userid"])}
