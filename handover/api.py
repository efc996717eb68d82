"""The handovers API: the resigned colleagues waiting for a takeover, preview, start, read, retry or reassign,
export. Managers (within their team) and admins."""

from __future__ import annotations

from typing import Any

from flask import Response

from core.api import ApiBlueprint, csv_download
from crm.service import audit
from identity.web import principal, require_role, scope_for

from . import service
from .schemas import (HandoverChatListOut, HandoverChatsQuery, HandoverEmptyIn, HandoverIn, HandoverItemsQuery,
                      HandoverJobDetailOut, HandoverJobListOut, HandoverListQuery, HandoverPreviewIn,
                      HandoverPreviewOut, HandoverRefreshOut, HandoverRetryIn, HandoverSettingsIn,
                      HandoverSettingsOut, HandoverUnassignedOut, HandoverUnassignedQuery)
from .waiting import last_refresh, pending_refresh, request_refresh, waiting_chats, waiting_customers, waiting_staff

bp = ApiBlueprint("handover_api", __name__, url_prefix="/api/v1", description="客户交接（离职继承与在职转接）")

ROLES = service.ROLES


def _refresh_dict(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "status": row.status, "reason": row.reason, "requested_at": row.requested_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None, "counts": row.counts or {},
            "error": row.error}


def _detail(job: Any, args: dict[str, Any]) -> dict[str, Any]:
    rows, next_after = service.customers_page(job, status=args["status"], after=args["after"], limit=args["limit"])
    return {**service.detail(job), "customers": rows, "next_after": next_after}


@bp.get("/handovers")
@require_role(*ROLES)
@bp.arguments(HandoverListQuery, location="query")
@bp.response(200, HandoverJobListOut)
def list_handovers(args: dict[str, Any]) -> dict[str, Any]:
    """Handover jobs, newest first, with their progress (a page; `before` for the next)."""
    rows = service.list_jobs(principal(), status=args["status"], kind=args["kind"], before=args["before"],
                             limit=args["limit"])
    return {"handovers": [service.job_dict(j) for j in rows],
            "next_before": rows[-1].id if len(rows) == args["limit"] else None}


@bp.post("/handovers")
@require_role(*ROLES)
@bp.arguments(HandoverIn)
@bp.response(201, HandoverJobDetailOut)
def create_handover(data: dict[str, Any]) -> dict[str, Any]:
    """Start a handover: checked and distributed as the preview shows, sent in calls of ≤100, followed to the end."""
    job = service.create_job(principal(), data)
    return _detail(job, {"status": None, "after": 0, "limit": 100})


@bp.post("/handovers/preview")
@require_role(*ROLES)
@bp.arguments(HandoverPreviewIn)
@bp.response(200, HandoverPreviewOut)
def preview_handover(data: dict[str, Any]) -> dict[str, Any]:
    """Who would go to whom, who cannot move and why (checked from local history), how many calls it takes."""
    return service.preview(principal(), data)


@bp.get("/handovers/unassigned")
@require_role(*ROLES)
@bp.arguments(HandoverUnassignedQuery, location="query")
@bp.response(200, HandoverUnassignedOut)
def unassigned(args: dict[str, Any]) -> dict[str, Any]:
    """Resigned colleagues with customers or chats waiting for a takeover; with `handover_userid`, theirs."""
    p = principal()
    out: dict[str, Any] = {"staff": [{**s, "dimission_at": s["dimission_at"].isoformat() if s["dimission_at"] else None}
                                     for s in waiting_staff(p.corp_id, scope_for(p))],
                           "refreshed": _refresh_dict(last_refresh(p.corp_id)),
                           "refreshing": _refresh_dict(pending_refresh(p.corp_id)),
                           "customers": [], "chats": [], "next_after": None}
    who = args["handover_userid"]
    if who and scope_for(p).allows(who):
        customers = waiting_customers(p.corp_id, who)
        page = customers[args["after"]:args["after"] + args["limit"]]
        out["customers"] = [{"external_userid": c.external_userid, "name": c.name} for c in page]
        out["next_after"] = args["after"] + len(page) if args["after"] + len(page) < len(customers) else None
        out["chats"] = [{"chat_id": c.chat_id, "name": c.name} for c in waiting_chats(p.corp_id, who)]
    return out


@bp.post("/handovers/unassigned/refresh")
@require_role(*ROLES)
@bp.arguments(HandoverEmptyIn)
@bp.response(202, HandoverRefreshOut)
def refresh_unassigned(data: dict[str, Any]) -> dict[str, Any]:
    """Read the waiting list from WeCom again (done by the worker in a moment; `GET …/unassigned` shows it)."""
    p = principal()
    row = request_refresh(p.corp_id, p.actor, "manual")
    audit(p.corp_id, p.actor, "handover.refresh", "handover_refresh", str(row.id), {})
    return _refresh_dict(row) or {}


@bp.get("/handovers/<id:job_id>")
@require_role(*ROLES)
@bp.arguments(HandoverItemsQuery, location="query")
@bp.response(200, HandoverJobDetailOut)
def get_handover(args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """One job: progress, counts, per-takeover figures, failures with reasons, and a page of its customers."""
    return _detail(service.get_job(principal(), job_id), args)


@bp.get("/handovers/<id:job_id>/chats")
@require_role(*ROLES)
@bp.arguments(HandoverChatsQuery, location="query")
@bp.response(200, HandoverChatListOut)
def list_chats(args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """The job's customer group chats and their state, a page at a time."""
    rows, next_after = service.chats_page(service.get_job(principal(), job_id), status=args["status"],
                                          after=args["after"], limit=args["limit"])
    return {"chats": rows, "next_after": next_after}


@bp.post("/handovers/<id:job_id>/retry")
@require_role(*ROLES)
@bp.arguments(HandoverRetryIn)
@bp.response(202, HandoverJobDetailOut)
def retry_handover(data: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Send what did not move again: to the same colleague, or (`takeover_userids`) to others — a new round."""
    p = principal()
    job = service.retry(p, service.get_job(p, job_id), data)
    return _detail(job, {"status": None, "after": 0, "limit": 100})


@bp.get("/handovers/<id:job_id>/export.csv")
@require_role(*ROLES)
@bp.response(200, content_type="text/csv", description="每位客户和每个客户群的结果，UTF-8 CSV")
def export_handover(job_id: int) -> Response:
    """Every customer's and chat's result as CSV (streamed)."""
    p = principal()
    job = service.get_job(p, job_id)
    audit(p.corp_id, p.actor, "handover.export", "handover_job", str(job.id), {})
    return csv_download(service.export_csv(job), service.export_filename(job))


@bp.get("/handovers/settings")
@require_role(*ROLES)
@bp.response(200, HandoverSettingsOut)
def get_settings() -> dict[str, Any]:
    """The takeover's customer limit checked before sending."""
    row = service.get_settings(principal().corp_id)
    return {"customer_limit": row.customer_limit, "updated_at": row.updated_at.isoformat() if row.updated_at else None,
            "updated_by": row.updated_by or ""}


@bp.put("/handovers/settings")
@require_role("admin")
@bp.arguments(HandoverSettingsIn)
@bp.response(200, HandoverSettingsOut)
def put_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Change the takeover's customer limit (admins; 1 to WeCom's 50,000)."""
    p = principal()
    row = service.save_settings(p.corp_id, p.actor, data["customer_limit"])
    return {"customer_limit": row.customer_limit, "updated_at": row.updated_at.isoformat(),
            "updated_by": row.updated_by}
