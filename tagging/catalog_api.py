"""The JSON API of tagging part 2 (bearer token, or the console session with the `X-CSRF-Token` header).

    GET    /api/v1/tags                       groups with tags and usage counts (?deleted=1 with tombstones)
    POST   /api/v1/tags                       {"group_id"| "group_name", "names": [...]} → 202 (admin)
    PATCH  /api/v1/tags/{id}                  {"name"?, "order_ids"?: [...]} a tag or a group (admin)
    DELETE /api/v1/tags/{id}                  a tag or a group → 202 (admin)
    POST   /api/v1/tags/{id}/merge            {"into": tag_id} (admin)
    GET    /api/v1/tags/governance            unused tags, near-duplicate pairs, refused changes
    GET    /api/v1/tags/relations/{id}/sync   the sync state of a relation's latest tag change
    POST   /api/v1/tags/bulk                  {"add", "remove", "filter" | "external_userids", "userid"?} → 202 job
    GET    /api/v1/tags/jobs/{id}             a bulk edit or backfill job with its progress
    GET    /api/v1/rules, POST /api/v1/rules  auto-tagging rules (admin, marketer)
    GET, PUT, DELETE /api/v1/rules/{id}
    POST   /api/v1/rules/{id}/dry-run         → {"matched", "would_change", "sample"}
    POST   /api/v1/rules/{id}/backfill        → 202 job
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from console.identity import Principal, current_principal, require_role
from crm.service import UserValueError
from extensions import db, utcnow

from . import catalog, rules, service
from .rule_models import TagJob

bp = Blueprint("tagging_catalog_api", __name__, url_prefix="/api/v1")

EDIT_ROLES = ("admin",)
READ_ROLES = ("admin", "manager", "marketer", "staff")
RULE_ROLES = ("admin", "marketer")


def _error(status: int, code: str, message: str) -> Any:
    return jsonify(error={"code": code, "message": message}), status


@bp.errorhandler(UserValueError)
def _bad_value(exc: UserValueError) -> Any:
    db.session.rollback()
    return _error(422, "invalid", str(exc))


def _principal() -> Principal:
    principal = current_principal()
    assert principal is not None
    return principal


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UserValueError("请求体应为 JSON 对象")
    return data


# ---------------------------------------------------------------- catalog


@bp.get("/tags")
@require_role(*READ_ROLES)
def list_tags() -> Any:
    p = _principal()
    return jsonify(tag_groups=catalog.list_catalog(p.corp_id, include_deleted=request.args.get("deleted") == "1"))


@bp.post("/tags")
@require_role(*EDIT_ROLES)
def create_tags() -> Any:
    p, data = _principal(), _body()
    names = data.get("names") or ([data["name"]] if data.get("name") else [])
    tags = catalog.create_tags(p.corp_id, p.actor, names, group_id=data.get("group_id"),
                               group_name=data.get("group_name"))
    db.session.commit()
    return jsonify(tags=[catalog.tag_dict(t) for t in tags]), 202


@bp.patch("/tags/<wecom_id>")
@require_role(*EDIT_ROLES)
def edit_tag(wecom_id: str) -> Any:
    p, data = _principal(), _body()
    if "order_ids" in data:
        changed = catalog.reorder(p.corp_id, p.actor, list(data["order_ids"] or []),
                                  group_id=None if wecom_id == "groups" else wecom_id)
        db.session.commit()
        return jsonify(changed=changed), 202
    obj = catalog.rename(p.corp_id, p.actor, wecom_id, data.get("name"))
    db.session.commit()
    return jsonify(id=wecom_id, name=obj.name, sync="pending"), 202


@bp.delete("/tags/<wecom_id>")
@require_role(*EDIT_ROLES)
def delete_tag(wecom_id: str) -> Any:
    p = _principal()
    obj = catalog.delete(p.corp_id, p.actor, wecom_id)
    db.session.commit()
    return jsonify(id=wecom_id, name=obj.name, deleted=True), 202


@bp.post("/tags/<wecom_id>/merge")
@require_role(*EDIT_ROLES)
def merge_tag(wecom_id: str) -> Any:
    p, data = _principal(), _body()
    result = catalog.merge(p.corp_id, p.actor, wecom_id, str(data.get("into") or ""))
    db.session.commit()
    return jsonify(result), 202


@bp.get("/tags/governance")
@require_role("admin", "marketer")
def governance() -> Any:
    p = _principal()
    return jsonify(unused=catalog.unused_tags(p.corp_id), near_duplicates=catalog.near_duplicates(p.corp_id),
                   failed_changes=service.failed_changes(p.corp_id))


@bp.get("/tags/relations/<int:relation_id>/sync")
@require_role(*READ_ROLES)
def relation_sync(relation_id: int) -> Any:
    return jsonify(service.relation_sync_state(_principal().corp_id, relation_id))


# ---------------------------------------------------------------- bulk edit jobs


@bp.post("/tags/bulk")
@require_role("admin", "manager", "marketer")
def bulk_edit() -> Any:
    p, data = _principal(), _body()
    job = service.start_bulk_edit(p.corp_id, p.actor, add=list(data.get("add") or []),
                                  remove=list(data.get("remove") or []), filter=data.get("filter"),
                                  external_userids=data.get("external_userids"), userid=data.get("userid"))
    db.session.commit()
    service.maybe_start(job)
    return jsonify(service.job_dict(job)), 202


@bp.get("/tags/jobs/<int:job_id>")
@require_role("admin", "manager", "marketer")
def get_job(job_id: int) -> Any:
    job = db.session.get(TagJob, job_id)
    if job is None or job.corp_id != _principal().corp_id:
        return _error(404, "not_found", "任务不存在")
    return jsonify(service.job_dict(job))


# ---------------------------------------------------------------- rules


def _rule_or_404(rule_id: int) -> Any:
    rule = rules.get_rule(_principal().corp_id, rule_id)
    if rule is None:
        raise LookupError
    return rule


@bp.errorhandler(LookupError)
def _not_found(exc: LookupError) -> Any:
    return _error(404, "not_found", "规则不存在")


@bp.get("/rules")
@require_role(*RULE_ROLES)
def list_rules() -> Any:
    return jsonify(rules=[rules.rule_dict(r) for r in rules.list_rules(_principal().corp_id)],
                   loops=[{"rule_id": r.rule_id, "customer_id": r.customer_id, "chain": r.chain,
                           "outcome": r.outcome, "at": r.at.isoformat()} for r in rules.loops(_principal().corp_id)])


@bp.post("/rules")
@require_role(*RULE_ROLES)
def create_rule() -> Any:
    p = _principal()
    rule = rules.save_rule(p.corp_id, p.actor, _body())
    db.session.commit()
    return jsonify(rules.rule_dict(rule)), 201


@bp.get("/rules/<int:rule_id>")
@require_role(*RULE_ROLES)
def get_rule(rule_id: int) -> Any:
    return jsonify(rules.rule_dict(_rule_or_404(rule_id)))


@bp.put("/rules/<int:rule_id>")
@require_role(*RULE_ROLES)
def update_rule(rule_id: int) -> Any:
    p = _principal()
    rule = rules.save_rule(p.corp_id, p.actor, _body(), _rule_or_404(rule_id))
    db.session.commit()
    return jsonify(rules.rule_dict(rule))


@bp.delete("/rules/<int:rule_id>")
@require_role(*RULE_ROLES)
def delete_rule(rule_id: int) -> Any:
    rule = _rule_or_404(rule_id)
    rule.deleted_at, rule.enabled = utcnow(), False
    db.session.commit()
    return "", 204


@bp.post("/rules/<int:rule_id>/dry-run")
@require_role(*RULE_ROLES)
def dry_run(rule_id: int) -> Any:
    return jsonify(rules.dry_run(_rule_or_404(rule_id)))


@bp.post("/rules/<int:rule_id>/backfill")
@require_role(*RULE_ROLES)
def backfill(rule_id: int) -> Any:
    job = rules.start_backfill(_rule_or_404(rule_id), _principal().actor)
    db.session.commit()
    service.maybe_start(job)
    return jsonify(service.job_dict(job)), 202
