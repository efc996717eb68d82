"""The JSON API of tagging part 1 (bearer token, or the console session with the `X-CSRF-Token` header).

    POST   /api/v1/segments/preview      {"filter": F} → {"count", "sample": [...]}
    GET    /api/v1/segments              saved segments with their sizes (as the caller sees them)
    POST   /api/v1/segments              {"name", "filter", "description"?} → 201
    GET    /api/v1/segments/{id}         one segment with its size
    PUT    /api/v1/segments/{id}         {"name", "filter", "description"?}
    DELETE /api/v1/segments/{id}         → 204
    POST   /api/v1/events                [event…] or {"events": [event…]} (≤ 1000) → per-event results
    GET    /api/v1/stages                the ordered stages and whether they are mirrored to WeCom
    PUT    /api/v1/stages                {"stages": [name | {"name", "is_lost"}…], "mirror"?} (admin)
    GET    /api/v1/tiers                 customers per value tier, the thresholds
    PUT    /api/v1/tiers/thresholds      {key: n…} (admin)
    POST   /api/v1/tiers/compute         place customers in tiers now (admin)

A bad filter answers 400 with `error.path` naming the node; other bad values answer 422.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request

from console.identity import Principal, current_principal, login_required, require_role, scope_for
from crm.service import UserValueError
from extensions import db

from . import events, segments, stages, tiers
from .segments import FilterError

log = logging.getLogger("scrm.tagging.api")

bp = Blueprint("tagging_api", __name__, url_prefix="/api/v1")

SEGMENT_ROLES = ("marketer", "manager")
EVENTS_MAX_BYTES = 4 * 1024 * 1024  # 1000 events with their properties


def _error(status: int, code: str, message: str, **extra: Any) -> Any:
    return jsonify(error={"code": code, "message": message, **extra}), status


@bp.errorhandler(FilterError)
def _bad_filter(exc: FilterError) -> Any:
    db.session.rollback()
    return _error(400, "invalid_filter", str(exc), path=exc.path)


@bp.errorhandler(UserValueError)
def _bad_value(exc: UserValueError) -> Any:
    db.session.rollback()
    return _error(422, "invalid", str(exc))


def _principal() -> Principal:
    principal = current_principal()
    assert principal is not None  # the decorators let no anonymous request through
    return principal


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UserValueError("请求体应为 JSON 对象")
    return data


def _filter_of(data: dict[str, Any]) -> Any:
    if "filter" not in data:
        raise FilterError("filter", "缺少 filter")
    return data["filter"]


# ---------------------------------------------------------------- segments


@bp.post("/segments/preview")
@require_role(*SEGMENT_ROLES)
def preview() -> Any:
    return jsonify(segments.preview(_principal(), _filter_of(_body())))


@bp.get("/segments")
@require_role(*SEGMENT_ROLES)
def list_segments() -> Any:
    principal = _principal()
    rows = [segments.segment_dict(s, segments.segment_size(principal, s))
            for s in segments.list_segments(principal.corp_id)]
    db.session.commit()
    return jsonify(segments=rows)


@bp.post("/segments")
@require_role(*SEGMENT_ROLES)
def create_segment() -> Any:
    principal = _principal()
    data = _body()
    row = segments.save_segment(principal.corp_id, data.get("name"), _filter_of(data), principal.actor,
                                description=data.get("description") or "")
    body = segments.segment_dict(row, segments.segment_size(principal, row))
    db.session.commit()
    return jsonify(body), 201


def _segment_or_404(principal: Principal, segment_id: int) -> Any:
    row = segments.get_segment(principal.corp_id, segment_id)
    if row is None:
        return None
    return row


@bp.get("/segments/<int:segment_id>")
@require_role(*SEGMENT_ROLES)
def get_segment(segment_id: int) -> Any:
    principal = _principal()
    row = _segment_or_404(principal, segment_id)
    if row is None:
        return _error(404, "not_found", "找不到该分群")
    body = segments.segment_dict(row, segments.segment_size(principal, row))
    db.session.commit()
    return jsonify(body)


@bp.put("/segments/<int:segment_id>")
@require_role(*SEGMENT_ROLES)
def update_segment(segment_id: int) -> Any:
    principal = _principal()
    row = _segment_or_404(principal, segment_id)
    if row is None:
        return _error(404, "not_found", "找不到该分群")
    data = _body()
    segments.save_segment(principal.corp_id, data.get("name"), _filter_of(data), principal.actor,
                          description=data.get("description") or "", segment=row)
    body = segments.segment_dict(row, segments.segment_size(principal, row))
    db.session.commit()
    return jsonify(body)


@bp.delete("/segments/<int:segment_id>")
@require_role(*SEGMENT_ROLES)
def delete_segment(segment_id: int) -> Any:
    principal = _principal()
    row = _segment_or_404(principal, segment_id)
    if row is None:
        return _error(404, "not_found", "找不到该分群")
    segments.delete_segment(row, principal.actor)
    db.session.commit()
    return "", 204


# ---------------------------------------------------------------- events


@bp.post("/events")
@require_role("marketer", "manager")
def post_events() -> Any:
    request.max_content_length = EVENTS_MAX_BYTES
    principal = _principal()
    data = request.get_json(silent=True)
    items = data.get("events") if isinstance(data, dict) else data
    result = events.store_events(principal.corp_id, items, principal.actor, scope_for(principal))
    db.session.commit()
    return jsonify(result)


# ---------------------------------------------------------------- stages and tiers


def _stages_body(corp_id: str) -> dict[str, Any]:
    return {"stages": [s.as_dict() for s in stages.list_stages(corp_id)], "mirror": stages.mirror_enabled(corp_id),
            "mirror_group": stages.MIRROR_GROUP,
            "mirror_tags": sorted(stages.mirror_tags(corp_id)) if stages.mirror_enabled(corp_id) else []}


@bp.get("/stages")
@login_required("console")
def get_stages() -> Any:
    principal = _principal()
    body = _stages_body(principal.corp_id)
    db.session.commit()
    return jsonify(body)


@bp.put("/stages")
@require_role("admin")
def put_stages() -> Any:
    principal = _principal()
    data = _body()
    mirror = data.get("mirror")
    if mirror is not None and not isinstance(mirror, bool):
        raise UserValueError("mirror 应为 true 或 false")
    stages.save_stages(principal.corp_id, data.get("stages"), principal.actor, mirror=mirror)
    body = _stages_body(principal.corp_id)
    db.session.commit()
    return jsonify(body)


@bp.get("/tiers")
@require_role(*SEGMENT_ROLES)
def get_tiers() -> Any:
    principal = _principal()
    body = {"tiers": tiers.tier_counts(principal.corp_id), "thresholds": tiers.thresholds(principal.corp_id),
            "tag_group": tiers.TIER_GROUP}
    db.session.commit()
    return jsonify(body)


@bp.put("/tiers/thresholds")
@require_role("admin")
def put_thresholds() -> Any:
    principal = _principal()
    body = tiers.save_thresholds(principal.corp_id, _body(), principal.actor)
    db.session.commit()
    return jsonify(thresholds=body)


@bp.post("/tiers/compute")
@require_role("admin")
def compute_tiers() -> Any:
    principal = _principal()
    stats = tiers.compute_tiers(principal.corp_id, actor=principal.actor)
    db.session.commit()
    return jsonify(stats)
