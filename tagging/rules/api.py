"""The auto-tagging rules API (admins, marketers): list, create, read, replace, delete, dry run."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from core.db import utcnow
from core.errors import NotFound
from identity.web import principal, require_role

from . import service
from .models import TagRule
from .schemas import DryRunOut, RuleIn, RuleOut, RulesOut

bp = ApiBlueprint("rules_api", __name__, url_prefix="/api/v1", description="自动打标签规则")

ROLES = ("admin", "marketer")


def _rule(rule_id: int) -> TagRule:
    rule = service.get_rule(principal().corp_id, rule_id)
    if rule is None:
        raise NotFound("规则不存在")
    return rule


@bp.get("/rules")
@require_role(*ROLES)
@bp.response(200, RulesOut)
def list_rules() -> dict[str, Any]:
    """The rules, and the cascades recently stopped as loops."""
    corp_id = principal().corp_id
    return {"rules": [service.rule_dict(r) for r in service.list_rules(corp_id)],
            "loops": [{"rule_id": r.rule_id, "customer_id": r.customer_id, "chain": r.chain, "outcome": r.outcome,
                       "at": r.at.isoformat()} for r in service.loops(corp_id)]}


@bp.post("/rules")
@require_role(*ROLES)
@bp.arguments(RuleIn)
@bp.response(201, RuleOut)
def create_rule(data: dict[str, Any]) -> dict[str, Any]:
    """Create a rule: WHEN trigger IF condition (a segment filter) THEN actions."""
    p = principal()
    return service.rule_dict(service.save_rule(p.corp_id, p.actor, data))


@bp.get("/rules/<id:rule_id>")
@require_role(*ROLES)
@bp.response(200, RuleOut)
def get_rule(rule_id: int) -> dict[str, Any]:
    """One rule."""
    return service.rule_dict(_rule(rule_id))


@bp.put("/rules/<id:rule_id>")
@require_role(*ROLES)
@bp.arguments(RuleIn)
@bp.response(200, RuleOut)
def update_rule(data: dict[str, Any], rule_id: int) -> dict[str, Any]:
    """Replace a rule's definition."""
    p = principal()
    return service.rule_dict(service.save_rule(p.corp_id, p.actor, data, _rule(rule_id)))


@bp.delete("/rules/<id:rule_id>")
@require_role(*ROLES)
@bp.response(204)
def delete_rule(rule_id: int) -> None:
    """Delete a rule (it stops firing; its history stays)."""
    rule = _rule(rule_id)
    rule.deleted_at, rule.enabled = utcnow(), False


@bp.post("/rules/<id:rule_id>/dry-run")
@require_role(*ROLES)
@bp.response(200, DryRunOut)
def dry_run(rule_id: int) -> dict[str, Any]:
    """Try the rule on existing customers without changing anything."""
    return service.dry_run(_rule(rule_id))
