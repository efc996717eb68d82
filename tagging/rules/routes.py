"""Console pages of auto-tagging rules: the list in words, a guided editor (trigger, conditions with the
segment builder's fields, actions; no JSON anywhere), enable/disable, delete, stopped loops, a dry run.

A rule reads as a sentence: "客户从「expo2026」渠道添加时，且带有标签 A类 → 打标签 重点客户". `describe`
writes it from the stored definition; `rule_from_form` reads the editor's fields (the condition through the
segment builder's `filter_from_form`, so the same fields mean the same thing in both places).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import distinct, select

from core.db import db, utcnow
from core.errors import UserValueError
from core.time import china_datetime
from core.uow import mark_failed
from crm.models import Customer, FollowRelation, Staff
from crm.service import audit, state_labels
from identity.web import principal, require_role

from ..catalog.service import list_catalog
from ..lifecycle.stages import MIRROR_GROUP, stage_names
from ..lifecycle.tiers import TIER_GROUP, TIERS
from ..segments.routes import EVENT_TYPES, LIST_FIELDS, filter_from_form, form_from_filter
from . import service as rules
from .models import TagRule

bp = Blueprint("tag_rules", __name__, url_prefix="/console/rules", template_folder="templates")

ROLES = ("admin", "marketer")


def _int(value: str, label: str) -> int:
    if not value.strip().isdigit():
        raise UserValueError(f"{label}应为正整数")
    return int(value)


def rule_from_form(form: Any) -> dict[str, Any]:
    """The editor's fields → a rule definition (validated by `rules.validate_rule` when saved)."""
    trigger = form.get("trigger", "")
    params: dict[str, Any] = {}
    if trigger == "customer_added" and form.get("param_state"):
        params["state"] = form["param_state"]
    elif trigger == "joined_group_chat" and form.get("param_join_state"):
        params["state"] = form["param_join_state"]
    elif trigger in ("tag_added", "tag_removed"):
        if not form.get("param_tag"):
            raise UserValueError("请选择触发规则的标签")
        params["tag_id"] = form["param_tag"]
    elif trigger == "stage_changed" and form.get("param_stage"):
        params["to"] = form["param_stage"]
    elif trigger == "inactivity":
        params["days"] = _int(form.get("param_days") or "", "未跟进天数")
    elif trigger == "event" and form.get("param_event"):
        params["type"] = form["param_event"]
    actions: list[dict[str, Any]] = []
    if form.getlist("add"):
        actions.append({"add_tags": form.getlist("add")})
    if form.getlist("remove"):
        actions.append({"remove_tags": form.getlist("remove")})
    if set(form.getlist("add")) & set(form.getlist("remove")):
        raise UserValueError("同一个标签不能既添加又移除")
    if form.get("set_stage"):
        actions.append({"set_stage": form["set_stage"]})
    if (form.get("notify") or "").strip():
        actions.append({"notify": form["notify"].strip()})
    condition = filter_from_form(form)
    return {"name": form.get("name"), "trigger": trigger, "trigger_params": params,
            "condition": condition if condition["all"] else None, "actions": actions,
            "enabled": form.get("enabled") == "1" if form.get("enabled_field") else True}


# ---------------------------------------------------------------- a rule in words


class Names:
    """Tag, staff and channel names for describing rules (one lookup per page)."""

    def __init__(self, corp_id: str) -> None:
        self.states = state_labels(corp_id)
        self.tags = {t["tag_id"]: t["name"] for g in list_catalog(corp_id, include_deleted=True) for t in g["tags"]}
        self.staff = dict(db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id)).tuples().all())

    def tag_list(self, ids: Any) -> str:
        return "、".join(self.tags.get(str(t), "已删除的标签") for t in ids or [])

    def channel(self, state: str) -> str:
        return channel_name(self.states, state)


def channel_name(labels: dict[str, str], state: str) -> str:
    """A channel's name; a State nobody named yet is shown as such, not as a bare code."""
    return labels.get(state) or f"未命名渠道（{state}）"


def describe_trigger(rule: TagRule, names: Names) -> str:
    p = rule.trigger_params or {}
    return {
        "customer_added": f"客户从「{names.channel(p['state'])}」渠道添加时" if p.get("state") else "添加客户时",
        "tag_added": f"客户被打上「{names.tag_list([p.get('tag_id')])}」标签时",
        "tag_removed": f"客户被移除「{names.tag_list([p.get('tag_id')])}」标签时",
        "followup_written": "写跟进记录时",
        "stage_changed": f"客户阶段变为「{p.get('to')}」时" if p.get("to") else "客户阶段变化时",
        "joined_group_chat": f"客户通过「{names.channel(p['state'])}」加入客户群时" if p.get("state")
        else "客户加入客户群时",
        "inactivity": f"客户超过 {p.get('days')} 天未跟进时（每天检查）",
        "event": f"收到客户「{EVENT_TYPES.get(p.get('type', ''), p.get('type'))}」行为时" if p.get("type")
        else "收到客户行为时",
    }.get(rule.trigger, rules.TRIGGERS.get(rule.trigger, rule.trigger))


def describe_condition(tree: Any, names: Names) -> str:
    """A builder-shaped filter in words ("带有标签 A类 或 B类，阶段为 意向客户"); others are named as such."""
    if tree is None:
        return ""
    form = form_from_filter(tree)
    if form is None:
        return "满足通过 API 设置的条件"
    parts = []
    if form["tag"]:
        parts.append(f"带有标签 {' 或 '.join(names.tags.get(t, '已删除的标签') for t in form['tag'])}")
    if form["exclude_tag"]:
        parts.append(f"没有标签 {names.tag_list(form['exclude_tag'])}")
    if form["stage"]:
        parts.append("阶段为 " + " 或 ".join("未设置" if s == "__none__" else s for s in form["stage"]))
    if form["owner"]:
        parts.append("跟进人为 " + " 或 ".join(names.staff.get(u) or u for u in form["owner"]))
    if form["state"]:
        parts.append("来自渠道 " + " 或 ".join(names.channel(s) for s in form["state"]))
    if form["tier"]:
        parts.append("客户价值为 " + " 或 ".join(form["tier"]))
    if form.get("added_from"):
        parts.append(f"{form['added_from']} 起添加")
    if form.get("added_to"):
        parts.append(f"{form['added_to']} 前（含）添加")
    if form.get("no_followup_days"):
        parts.append(f"超过 {form['no_followup_days']} 天未跟进")
    if form.get("event_type"):
        within = f"近 {form['event_within_days']} 天" if form.get("event_within_days") else ""
        path = f"（页面以 {form['event_path']} 开头）" if form.get("event_path") else ""
        parts.append(f"{within}{EVENT_TYPES.get(form['event_type'], form['event_type'])}"
                     f"至少 {form.get('event_min_count') or 1} 次{path}")
    return "，".join(parts)


def describe_actions(rule: TagRule, names: Names) -> list[str]:
    out = []
    for action in rule.actions or []:
        (key, value), = action.items()
        out.append({"add_tags": lambda v: f"打标签 {names.tag_list(v)}", "remove_tags": lambda v: f"移除标签 {names.tag_list(v)}",
                    "set_stage": lambda v: f"设为阶段「{v}」", "notify": lambda v: f"提醒跟进人：“{v}”"}
                   .get(key, lambda v: key)(value))
    return out


def describe(rule: TagRule, names: Names) -> dict[str, Any]:
    return {"rule": rule, "when": describe_trigger(rule, names), "if": describe_condition(rule.condition, names),
            "then": describe_actions(rule, names)}


# ---------------------------------------------------------------- pages


def _editor_form(rule: TagRule | None) -> dict[str, Any]:
    """The editor's fields for a rule (empty for a new one)."""
    form: dict[str, Any] = {k: [] for k in LIST_FIELDS}
    form.update({"trigger": "customer_added", "add": [], "remove": [], "enabled": True, "condition_editable": True})
    if rule is None:
        return form
    p = rule.trigger_params or {}
    state = p.get("state", "")
    form.update(name=rule.name, trigger=rule.trigger, enabled=rule.enabled,
                param_state=state if rule.trigger == "customer_added" else "",
                param_join_state=state if rule.trigger == "joined_group_chat" else "",
                param_tag=p.get("tag_id", ""), param_stage=p.get("to", ""), param_days=p.get("days", ""),
                param_event=p.get("type", ""))
    for action in rule.actions or []:
        (key, value), = action.items()
        if key == "add_tags":
            form["add"] = list(value)
        elif key == "remove_tags":
            form["remove"] = list(value)
        elif key == "set_stage":
            form["set_stage"] = value
        elif key == "notify":
            form["notify"] = value
    if rule.condition is not None:
        condition = form_from_filter(rule.condition)
        if condition is None:
            form["condition_editable"] = False
        else:
            form.update(condition)
    return form


def _posted_form(form: Any) -> dict[str, Any]:
    """The editor's fields as posted (shown again when the rule could not be saved)."""
    out: dict[str, Any] = {k: form.getlist(k) for k in (*LIST_FIELDS, "add", "remove")}
    out.update({k: v for k, v in form.items() if k not in out})
    out.update(enabled=form.get("enabled") == "1", condition_editable=True)
    return out


def _choices(corp_id: str) -> dict[str, Any]:
    owners = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id,
                                                                       Staff.status != "resigned")
                                .order_by(Staff.name, Staff.userid)).all()
    seen = db.session.scalars(select(distinct(FollowRelation.state)).where(
        FollowRelation.corp_id == corp_id, FollowRelation.state != "").order_by(FollowRelation.state).limit(200)).all()
    labels = state_labels(corp_id)  # every named channel, join ways included, even before anyone came
    states = sorted(((s, channel_name(labels, s)) for s in {*seen, *labels}),
                    key=lambda pair: (pair[0] not in labels, pair[1]))
    # The stage and tier groups are kept by the system (they mirror each customer's stage and tier): a rule
    # sets the stage instead, and tiers are computed; their tags are not offered as things to set.
    groups = [g for g in list_catalog(corp_id) if g["tags"]]
    return {"groups": [g for g in groups if g["group_name"] not in (MIRROR_GROUP, TIER_GROUP)],
            "condition_groups": groups, "stages": stage_names(corp_id),
            "owners": [(u, n or u) for u, n in owners], "states": list(states), "tiers": TIERS,
            "event_types": EVENT_TYPES, "triggers": rules.TRIGGERS}


def _page(form: dict[str, Any], editing: TagRule | None, open_editor: bool) -> Any:
    p = principal()
    names = Names(p.corp_id)
    stopped = rules.loops(p.corp_id, 20)
    by_id = {r.id: r.name for r in db.session.scalars(select(TagRule).where(TagRule.corp_id == p.corp_id))}
    customers = dict(db.session.execute(select(Customer.id, Customer.name).where(
        Customer.id.in_([run.customer_id for run in stopped]))).tuples().all()) if stopped else {}
    loops = [{"at": china_datetime(run.at), "rule": by_id.get(run.rule_id, "已删除的规则"),
              "customer": customers.get(run.customer_id) or "（未知客户）",
              "chain": " → ".join(by_id.get(i, "已删除的规则") for i in [*run.chain, run.rule_id]),
              "outcome": "形成循环" if run.outcome == "loop" else "连锁层级过深"} for run in stopped]
    return render_template("tagging/rule_list.html", rules=[describe(r, names) for r in rules.list_rules(p.corp_id)],
                           loops=loops, form=form, editing=editing, open_editor=open_editor,
                           **_choices(p.corp_id))


def _rule_or_404(rule_id: int) -> TagRule:
    rule = rules.get_rule(principal().corp_id, rule_id)
    if rule is None:
        abort(404)
    return rule


@bp.route("/", methods=["GET", "POST"], endpoint="rules")
@require_role(*ROLES)
def rules_page() -> Any:
    """The rules in words, and the editor for a new one."""
    p = principal()
    if request.method == "POST":
        try:
            saved = rules.save_rule(p.corp_id, p.actor, rule_from_form(request.form))
        except UserValueError as exc:
            mark_failed()
            flash(f"规则没有保存：{exc}", "error")
            return _page(_posted_form(request.form), None, True)
        flash(f"规则「{saved.name}」已保存", "ok")
        return redirect(url_for(".rules"))
    return _page(_editor_form(None), None, False)


@bp.route("/<id:rule_id>", methods=["GET", "POST"])
@require_role(*ROLES)
def edit(rule_id: int) -> Any:
    """The editor for an existing rule."""
    p = principal()
    rule = _rule_or_404(rule_id)
    if request.method == "POST":
        data = rule_from_form(request.form) if request.form.get("condition_kept") != "1" else {
            **rule_from_form(request.form), "condition": rule.condition}
        try:
            rules.save_rule(p.corp_id, p.actor, data, rule)
        except UserValueError as exc:
            mark_failed()
            flash(f"规则没有保存：{exc}", "error")
            return _page(_posted_form(request.form), rule, True)
        flash(f"规则「{rule.name}」已保存", "ok")
        return redirect(url_for(".rules"))
    return _page(_editor_form(rule), rule, True)


@bp.post("/<id:rule_id>/toggle")
@require_role(*ROLES)
def toggle(rule_id: int) -> Any:
    """Pause a rule, or start it again."""
    p = principal()
    rule = _rule_or_404(rule_id)
    rules.save_rule(p.corp_id, p.actor, {**rules.rule_dict(rule), "enabled": not rule.enabled}, rule)
    flash(f"规则「{rule.name}」已{'启用' if rule.enabled else '停用'}", "ok")
    return redirect(url_for(".rules"))


@bp.post("/<id:rule_id>/delete")
@require_role(*ROLES)
def delete(rule_id: int) -> Any:
    """Delete a rule: it stops firing; what it did stays (as the API's DELETE)."""
    rule = _rule_or_404(rule_id)
    rule.deleted_at, rule.enabled = utcnow(), False
    audit(rule.corp_id, principal().actor, "rule.delete", "tag_rule", str(rule.id), {"name": rule.name})
    flash(f"已删除规则「{rule.name}」", "ok")
    return redirect(url_for(".rules"))


@bp.post("/<id:rule_id>/dry-run")
@require_role(*ROLES)
def dry_run(rule_id: int) -> Any:
    rule = _rule_or_404(rule_id)
    names = Names(principal().corp_id)
    return render_template("tagging/rule_dry_run.html", rule=describe(rule, names), result=rules.dry_run(rule))

