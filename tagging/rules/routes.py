"""Console pages of auto-tagging rules: the list with stopped loops, the form, a dry run."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from core.errors import UserValueError
from core.uow import mark_failed
from identity.web import principal, require_role

from ..catalog.service import list_catalog
from ..lifecycle.stages import stage_names
from . import service as rules

bp = Blueprint("tag_rules", __name__, url_prefix="/console/rules", template_folder="templates")

ROLES = ("admin", "marketer")


def rule_from_form(form: Any) -> dict[str, Any]:
    """The rule form (trigger, its parameter, tags to add/remove, stage, notify text) → a rule definition."""
    trigger = form.get("trigger", "")
    param = (form.get("param") or "").strip()
    params: dict[str, Any] = {}
    if trigger == "customer_added" and param:
        params["state"] = param
    elif trigger in ("tag_added", "tag_removed"):
        params["tag_id"] = form.get("param_tag") or ""
    elif trigger == "stage_changed" and param:
        params["to"] = param
    elif trigger == "inactivity":
        params["days"] = int(param) if param.isdigit() else 0
    actions: list[dict[str, Any]] = []
    if form.getlist("add"):
        actions.append({"add_tags": form.getlist("add")})
    if form.getlist("remove"):
        actions.append({"remove_tags": form.getlist("remove")})
    if form.get("stage"):
        actions.append({"set_stage": form["stage"]})
    if (form.get("notify") or "").strip():
        actions.append({"notify": form["notify"].strip()})
    condition = None
    if (form.get("condition") or "").strip():
        try:
            condition = json.loads(form["condition"])
        except ValueError:
            raise UserValueError("条件应为分群条件（JSON）") from None
    return {"name": form.get("name"), "trigger": trigger, "trigger_params": params, "condition": condition,
            "actions": actions, "enabled": form.get("enabled", "1") == "1"}


@bp.route("/", methods=["GET", "POST"], endpoint="rules")
@require_role(*ROLES)
def rules_page() -> Any:
    p = principal()
    if request.method == "POST":
        try:
            rules.save_rule(p.corp_id, p.actor, rule_from_form(request.form))
            flash("规则已保存", "ok")
            return redirect(url_for(".rules"))
        except UserValueError as exc:
            mark_failed()
            flash(str(exc), "error")
    return render_template("tagging/rule_list.html", rules=rules.list_rules(p.corp_id), triggers=rules.TRIGGERS,
                           loops=rules.loops(p.corp_id, 20), groups=list_catalog(p.corp_id),
                           stages=stage_names(p.corp_id), names=_tag_names(p.corp_id))


def _tag_names(corp_id: str) -> dict[str, str]:
    return {t["tag_id"]: t["name"] for g in list_catalog(corp_id) for t in g["tags"]}


@bp.post("/<id:rule_id>/dry-run")
@require_role(*ROLES)
def dry_run(rule_id: int) -> Any:
    p = principal()
    rule = rules.get_rule(p.corp_id, rule_id)
    if rule is None:
        abort(404)
    return render_template("tagging/rule_dry_run.html", rule=rule, result=rules.dry_run(rule))
