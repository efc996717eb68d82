"""The overview's JSON: `GET /api/v1/overview?from=&to=&department=&channel=` (the console's charts)."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from identity.web import login_required, principal

from . import service
from .schemas import OverviewOut, OverviewQuery

bp = ApiBlueprint("overview_api", __name__, url_prefix="/api/v1", description="概览：客户增长、成员业绩、标签与阶段、群发触达、客户交接")


@bp.get("/overview")
@login_required("console")
@bp.arguments(OverviewQuery, location="query")
@bp.response(200, OverviewOut)
def get_overview(query: dict[str, Any]) -> dict[str, Any]:
    """The overview's figures and chart data for a period, a department and a channel.

    Only the staff members the caller may see are counted (staff: their own; managers: their team).
    Figures come from pre-aggregates the worker refreshes every few minutes (`refreshed_at`).
    """
    f = service.filters_for(principal(), query["start"], query["end"], query["department"], query["channel"])
    body = service.overview(f)
    body["start"], body["end"] = body.pop("from"), body.pop("to")
    return body
