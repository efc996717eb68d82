"""The lifecycle API: the ordered stages, value tiers and their thresholds, behaviour events."""

from __future__ import annotations

from typing import Any

from flask import request

from core.api import ApiBlueprint
from identity.web import login_required, principal, require_role, scope_for

from . import events, stages, tiers
from .schemas import (ComputeOut, EventIn, EventsOut, StagesIn, StagesOut, ThresholdsIn, ThresholdsOut,
                      TiersOut)

bp = ApiBlueprint("lifecycle_api", __name__, url_prefix="/api/v1", description="客户阶段、价值分层与行为事件")

EVENTS_MAX_BYTES = 4 * 1024 * 1024  # 1000 events with their properties


@bp.before_request
def _events_may_be_larger() -> None:
    """A batch of 1000 events is larger than the server's default body limit."""
    if request.endpoint == "lifecycle_api.post_events":
        request.max_content_length = EVENTS_MAX_BYTES


def _stages_body(corp_id: str) -> dict[str, Any]:
    mirrored = stages.mirror_enabled(corp_id)
    return {"stages": [s.as_dict() for s in stages.list_stages(corp_id)], "mirror": mirrored,
            "mirror_group": stages.MIRROR_GROUP, "mirror_tags": sorted(stages.mirror_tags(corp_id)) if mirrored else []}


@bp.get("/stages")
@login_required("console")
@bp.response(200, StagesOut)
def get_stages() -> dict[str, Any]:
    """The corp's stages in order (the funnel, then the lost stages) and whether WeCom mirrors them."""
    return _stages_body(principal().corp_id)


@bp.put("/stages")
@require_role("admin")
@bp.arguments(StagesIn)
@bp.response(200, StagesOut)
def put_stages(data: dict[str, Any]) -> dict[str, Any]:
    """Replace the ordered list; a stage customers are still in cannot be removed."""
    p = principal()
    stages.save_stages(p.corp_id, data["stages"], p.actor, mirror=data.get("mirror"))
    return _stages_body(p.corp_id)


@bp.get("/tiers")
@require_role("marketer", "manager")
@bp.response(200, TiersOut)
def get_tiers() -> dict[str, Any]:
    """Customers per value tier and the thresholds that place them."""
    corp_id = principal().corp_id
    return {"tiers": tiers.tier_counts(corp_id), "thresholds": tiers.thresholds(corp_id), "tag_group": tiers.TIER_GROUP}


@bp.put("/tiers/thresholds")
@require_role("admin")
@bp.arguments(ThresholdsIn)
@bp.response(200, ThresholdsOut)
def put_thresholds(data: dict[str, Any]) -> dict[str, Any]:
    """Change the thresholds that place customers in value tiers (the others keep their value)."""
    p = principal()
    return {"thresholds": tiers.save_thresholds(p.corp_id, data, p.actor)}


@bp.post("/tiers/compute")
@require_role("admin")
@bp.response(200, ComputeOut)
def compute_tiers() -> dict[str, Any]:
    """Place every customer with events in a tier now (the nightly job does the same)."""
    p = principal()
    return tiers.compute_tiers(p.corp_id, actor=p.actor)


@bp.post("/events")
@require_role("marketer", "manager")
@bp.arguments(EventIn(many=True))
@bp.response(200, EventsOut)
def post_events(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Behaviour events from other touch points, idempotent by `id`; answered per event, in batch order."""
    p = principal()
    return events.store_events(p.corp_id, items, p.actor, scope_for(p))
