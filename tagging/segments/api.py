"""The segments API: preview a filter (count and sample) and keep saved segments (marketers, managers)."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from core.errors import NotFound
from identity.service import Principal
from identity.web import principal, require_role

from . import service
from .models import Segment
from .schemas import PreviewIn, PreviewOut, SegmentIn, SegmentListOut, SegmentOut

bp = ApiBlueprint("segments_api", __name__, url_prefix="/api/v1", description="客户分群")

ROLES = ("marketer", "manager")


def _segment(p: Principal, segment_id: int) -> Segment:
    row = service.get_segment(p.corp_id, segment_id)
    if row is None:
        raise NotFound("找不到该分群")
    return row


@bp.post("/segments/preview")
@require_role(*ROLES)
@bp.arguments(PreviewIn)
@bp.response(200, PreviewOut)
def preview(data: dict[str, Any]) -> dict[str, Any]:
    """How many customers the caller may see match F, and the newest ten of them."""
    return service.preview(principal(), data["filter"])


@bp.get("/segments")
@require_role(*ROLES)
@bp.response(200, SegmentListOut)
def list_segments() -> dict[str, Any]:
    """Saved segments with their sizes as the caller sees them."""
    p = principal()
    return {"segments": [service.segment_dict(s, service.segment_size(p, s)) for s in service.list_segments(p.corp_id)]}


@bp.post("/segments")
@require_role(*ROLES)
@bp.arguments(SegmentIn)
@bp.response(201, SegmentOut)
def create_segment(data: dict[str, Any]) -> dict[str, Any]:
    """Save a segment: a name and a filter tree (its size as the caller sees it is answered)."""
    p = principal()
    row = service.save_segment(p.corp_id, data["name"], data["filter"], p.actor, description=data["description"])
    return service.segment_dict(row, service.segment_size(p, row))


@bp.get("/segments/<id:segment_id>")
@require_role(*ROLES)
@bp.response(200, SegmentOut)
def get_segment(segment_id: int) -> dict[str, Any]:
    """One saved segment with its size."""
    p = principal()
    row = _segment(p, segment_id)
    return service.segment_dict(row, service.segment_size(p, row))


@bp.put("/segments/<id:segment_id>")
@require_role(*ROLES)
@bp.arguments(SegmentIn)
@bp.response(200, SegmentOut)
def update_segment(data: dict[str, Any], segment_id: int) -> dict[str, Any]:
    """Replace a saved segment's name, filter and description."""
    p = principal()
    row = _segment(p, segment_id)
    service.save_segment(p.corp_id, data["name"], data["filter"], p.actor, description=data["description"],
                         segment=row)
    return service.segment_dict(row, service.segment_size(p, row))


@bp.delete("/segments/<id:segment_id>")
@require_role(*ROLES)
@bp.response(204)
def delete_segment(segment_id: int) -> None:
    """Delete a saved segment (its name is free again)."""
    p = principal()
    service.delete_segment(_segment(p, segment_id), p.actor)
