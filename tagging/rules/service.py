"""Auto-tagging rules: declarative, stored, fired by what happens to customers.

A rule is WHEN trigger IF condition THEN actions:

- trigger: `customer_added` (params `state`: the contact way's State, optional), `tag_added` /
  `tag_removed` (`tag_id`), `followup_written`, `stage_changed` (`to`, optional), `joined_group_chat`
  (`state`: the join way's State, optional),
  `inactivity` (`days`: no follow-up for N days, evaluated on a schedule), `event` (behaviour events
  were stored; put the threshold in the condition, e.g. {"event": {"type": "page_view",
  "path_prefix": "/products/A", "min_count": 3, "within_days": 3}}).
- condition: a filter F (`tagging.segments`), optional.
- actions: `{"add_tags": [tag_id…]}`, `{"remove_tags": [tag_id…]}`, `{"set_stage": name}`,
  `{"notify": "text with {customer_name}"}` (an app message to the follow users).

Rule-made tag changes go through `tagging.assignments.service.change_relation_tags` (so the outbox,
`mark_tag` per relation) with actor `rule:<id>` and the rule and chain in the audit row.

Rules run in the worker, never in the request that changed the customer: the services announce what
happened (`core.signals`); the subscribers here queue a durable task ("rules.fire", `core.tasks`)
when an enabled rule has that trigger, and the worker runs the rules exactly once, after the user's
request has answered. What a rule changes is announced again, so rules cascade through the same queue.

Loops: a firing carries its chain (the rule ids already applied to this customer in this cascade: the
signal of a change a rule made carries `core.signals.cascade`, set while the rule's actions run). A rule
already in the chain, or a chain deeper than MAX_DEPTH, is stopped and recorded (`TagRuleRun.outcome`
"loop" / "too_deep", audit `rule.loop`); the console lists them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterable, cast

from sqlalchemy import select

from core.db import db, transaction_memo
from core.errors import UserValueError
from core.models import Task
from core.settings import settings
from core.signals import (CustomerAdded, EventsReceived, FollowupWritten, JoinedGroupChat, StageChanged, TagsChanged,
                          cascade)
from core.tasks import enqueue_task
from crm.models import Customer, FollowRelation, Tag
from crm.service import audit
from wecom.service import enqueue

from ..assignments.service import change_relation_tags, tags_by_id
from ..lifecycle.stages import change_stage, stage_names
from ..segments.service import compile_filter, validate_filter
from .models import TagRule, TagRuleRun

log = logging.getLogger("scrm.tagging.rules")

TRIGGERS = {
    "customer_added": "添加客户时", "tag_added": "客户被打上标签时", "tag_removed": "客户被移除标签时",
    "followup_written": "写跟进记录时", "stage_changed": "客户阶段变化时", "joined_group_chat": "客户入群时",
    "inactivity": "超过 N 天未跟进（每天检查）", "event": "收到行为事件时",
}
ACTIONS = ("add_tags", "remove_tags", "set_stage", "notify")
MAX_DEPTH = 5
DRY_RUN_LIMIT = 20000
SAMPLE = 10

FIRE_TASK = "rules.fire"


# ---------------------------------------------------------------- definitions


def _tag_ids(corp_id: str, value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserValueError(f"{path} 应为标签 id 列表")
    tags_by_id(corp_id, value)
    return list(dict.fromkeys(value))


def validate_rule(corp_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a rule definition; raise `UserValueError` naming what is wrong."""
    name = str(data.get("name") or "").strip()
    if not name or len(name) > 64:
        raise UserValueError("规则名称不能为空，最多 64 个字")
    trigger = data.get("trigger")
    if trigger not in TRIGGERS:
        raise UserValueError(f"未知的触发条件 {trigger!r}（可选：{', '.join(TRIGGERS)}）")
    params = dict(data.get("trigger_params") or {})
    if trigger in ("tag_added", "tag_removed"):
        params = {"tag_id": _tag_ids(corp_id, [params.get("tag_id")] if params.get("tag_id") else [], "tag_id")[0]}
    elif trigger in ("customer_added", "joined_group_chat"):
        params = {"state": str(params["state"])} if params.get("state") else {}
    elif trigger == "stage_changed":
        params = {"to": str(params["to"])} if params.get("to") else {}
    elif trigger == "inactivity":
        days = params.get("days")
        if not isinstance(days, int) or not 1 <= days <= 3650:
            raise UserValueError("inactivity 需要 days（1–3650 的整数）")
        params = {"days": days}
    elif trigger == "event":
        params = {"type": str(params["type"])} if params.get("type") else {}
    else:
        params = {}
    condition = data.get("condition")
    if condition is not None:
        validate_filter(corp_id, condition)
    actions = data.get("actions")
    if not isinstance(actions, list) or not actions:
        raise UserValueError("至少需要一个动作（add_tags、remove_tags、set_stage、notify）")
    clean: list[dict[str, Any]] = []
    for i, action in enumerate(actions):
        if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in ACTIONS:
            raise UserValueError(f"actions[{i}] 应为 {{动作: 值}}，动作可选 {', '.join(ACTIONS)}")
        (key, value), = action.items()
        if key in ("add_tags", "remove_tags"):
            value = _tag_ids(corp_id, value, f"actions[{i}].{key}")
        elif key == "set_stage":
            if value not in stage_names(corp_id):
                raise UserValueError(f"actions[{i}].set_stage：未知的客户阶段 {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise UserValueError(f"actions[{i}].notify 应为提醒文字")
        clean.append({key: value})
    return {"name": name, "trigger": trigger, "trigger_params": params, "condition": condition,
            "actions": clean, "enabled": bool(data.get("enabled", True))}


def save_rule(corp_id: str, actor: str, data: dict[str, Any], rule: TagRule | None = None) -> TagRule:
    """Create (or replace the definition of) a rule; flushes."""
    clean = validate_rule(corp_id, data)
    clash = db.session.scalar(select(TagRule.id).where(TagRule.corp_id == corp_id, TagRule.name == clean["name"],
                                                       TagRule.deleted_at.is_(None)))
    if clash is not None and (rule is None or clash != rule.id):
        raise UserValueError(f"已有同名规则「{clean['name']}」")
    if rule is None:
        rule = TagRule(corp_id=corp_id, created_by=actor)
        db.session.add(rule)
    for key, value in clean.items():
        setattr(rule, key, value)
    db.session.flush()
    db.session.info.pop(WAITING_KEY, None)  # what `_has_rules` remembered no longer holds
    audit(corp_id, actor, "rule.save", "tag_rule", str(rule.id), clean)
    return rule


def list_rules(corp_id: str) -> list[TagRule]:
    return list(db.session.scalars(select(TagRule).where(TagRule.corp_id == corp_id, TagRule.deleted_at.is_(None))
                                   .order_by(TagRule.id)))


def get_rule(corp_id: str, rule_id: int) -> TagRule | None:
    rule = db.session.get(TagRule, rule_id)
    return rule if rule is not None and rule.corp_id == corp_id and rule.deleted_at is None else None


def rule_dict(rule: TagRule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled, "trigger": rule.trigger,
            "trigger_params": rule.trigger_params, "condition": rule.condition, "actions": rule.actions,
            "created_by": rule.created_by, "created_at": rule.created_at.isoformat()}


def loops(corp_id: str, limit: int = 50) -> list[TagRuleRun]:
    """The newest stopped cascades (loops and too-deep chains)."""
    return list(db.session.scalars(select(TagRuleRun).where(TagRuleRun.corp_id == corp_id,
                                                            TagRuleRun.outcome.in_(("loop", "too_deep")))
                                   .order_by(TagRuleRun.id.desc()).limit(limit)))


# ---------------------------------------------------------------- firing


def _params_match(rule: TagRule, info: dict[str, Any]) -> bool:
    p = rule.trigger_params or {}
    if rule.trigger in ("customer_added", "joined_group_chat") and p.get("state"):
        return bool(info.get("state") == p["state"])
    if rule.trigger in ("tag_added", "tag_removed"):
        return p.get("tag_id") in (info.get("tag_ids") or [])
    if rule.trigger == "stage_changed" and p.get("to"):
        return bool(info.get("to") == p["to"])
    if rule.trigger == "event" and p.get("type"):
        return p["type"] in (info.get("types") or [p["type"]])
    return True


def _matches(rule: TagRule, customer_id: int) -> bool:
    if rule.condition is None:
        return True
    query = compile_filter(rule.corp_id, rule.condition).where(Customer.id == customer_id)
    return db.session.scalar(query) is not None


def fire(corp_id: str, trigger: str, customer_id: int, *, relation_id: int | None = None,
         info: dict[str, Any] | None = None, chain: Iterable[int] | None = None) -> int:
    """Run the enabled rules of `trigger` on one customer; how many rules changed something."""
    info = info or {}
    chain_t = tuple(chain or ())
    rules = db.session.scalars(select(TagRule).where(TagRule.corp_id == corp_id, TagRule.trigger == trigger,
                                                     TagRule.enabled.is_(True), TagRule.deleted_at.is_(None))
                               .order_by(TagRule.id)).all()
    applied = 0
    for rule in rules:
        if not _params_match(rule, info):
            continue
        if rule.id in chain_t or len(chain_t) >= MAX_DEPTH:
            _stopped(rule, customer_id, trigger, chain_t)
            continue
        if not _matches(rule, customer_id):
            continue
        if apply_rule(rule, customer_id, trigger, relation_id=relation_id, chain=chain_t):
            applied += 1
    return applied


def _stopped(rule: TagRule, customer_id: int, trigger: str, chain: tuple[int, ...]) -> None:
    outcome = "loop" if rule.id in chain else "too_deep"
    db.session.add(TagRuleRun(corp_id=rule.corp_id, rule_id=rule.id, customer_id=customer_id, trigger=trigger,
                              chain=list(chain), outcome=outcome, changes={}))
    audit(rule.corp_id, f"rule:{rule.id}", "rule.loop", "customer", str(customer_id),
          {"rule_id": rule.id, "rule_name": rule.name, "chain": list(chain), "outcome": outcome, "trigger": trigger})
    log.warning("tagging.rules.%s rule=%s customer=%s chain=%s", outcome, rule.id, customer_id, chain)


def would_change(rule: TagRule, customer: Customer) -> bool:
    """True when applying the rule's actions to the customer would change something."""
    relations = [r for r in customer.relations if r.status == "active"]
    have = [{a.tag.tag_id for a in r.tags} for r in relations]
    for action in rule.actions:
        (key, value), = action.items()
        if key == "add_tags" and any(set(value) - h for h in have):
            return True
        if key == "remove_tags" and any(set(value) & h for h in have):
            return True
        if key == "set_stage" and customer.stage != value:
            return True
    return False


def apply_rule(rule: TagRule, customer_id: int, trigger: str, *, relation_id: int | None = None,
               chain: tuple[int, ...] = ()) -> bool:
    """Apply the rule's actions to one customer (to `relation_id` only, when the trigger names one).

    While the actions run, `core.signals.cascade` holds the chain with this rule, so the changes it makes
    are announced as part of this cascade."""
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        return False
    relations = [r for r in customer.relations if r.status == "active" and (relation_id is None or r.id == relation_id)]
    new_chain = chain + (rule.id,)
    token = cascade.set(new_chain)
    actor = f"rule:{rule.id}"
    detail = {"rule_id": rule.id, "rule_name": rule.name, "chain": list(new_chain), "trigger": trigger}
    changes: dict[str, Any] = {}
    try:
        for action in rule.actions:
            (key, value), = action.items()
            if key in ("add_tags", "remove_tags"):
                for rel in relations:
                    add = value if key == "add_tags" else []
                    remove = value if key == "remove_tags" else []
                    if change_relation_tags(rule.corp_id, rel, add, remove, actor, "rule", detail=detail):
                        changes.setdefault(key, []).append(rel.userid)
            elif key == "set_stage":
                if change_stage(rule.corp_id, customer, value, actor, source="rule") is not None:
                    changes["set_stage"] = value
            elif key == "notify" and (changes or trigger not in ("tag_added", "tag_removed")):
                changes["notify"] = _notify(rule, customer, relations, value)
    finally:
        cascade.reset(token)
    if changes:
        db.session.add(TagRuleRun(corp_id=rule.corp_id, rule_id=rule.id, customer_id=customer.id, trigger=trigger,
                                  chain=list(chain), outcome="applied", changes=changes))
        db.session.flush()
        log.info("tagging.rules.applied rule=%s customer=%s changes=%s", rule.id, customer.id, changes)
    return bool(changes)


def _notify(rule: TagRule, customer: Customer, relations: list[FollowRelation], text: str) -> list[str]:
    agent = settings().WECOM_AGENT_ID
    if not agent.isdigit():
        log.warning("tagging.rules.no-agent-id rule=%s", rule.id)
        return []
    users = sorted({r.userid for r in relations})
    if users:
        body = text.replace("{customer_name}", customer.name or customer.external_userid)
        enqueue(rule.corp_id, "rule_notify", "send_app_message",
                {"agentid": int(agent), "touser": users, "text": f"【{rule.name}】{body}"})
    return users


# ---------------------------------------------------------------- trigger sources (signal subscribers)


WAITING_KEY = "scrm.rules.waiting"


def _has_rules(corp_id: str, *triggers: str) -> bool:
    """True when an enabled rule waits for one of `triggers` (no task is queued for nobody).

    Remembered for the rest of the transaction: a burst of a hundred customers added asks once."""
    remembered = transaction_memo(WAITING_KEY)
    key = (corp_id, triggers)
    if key not in remembered:
        remembered[key] = db.session.scalar(select(TagRule.id).where(
            TagRule.corp_id == corp_id, TagRule.trigger.in_(triggers), TagRule.enabled.is_(True),
            TagRule.deleted_at.is_(None)).limit(1)) is not None
    return bool(remembered[key])


def _queue(corp_id: str, trigger: str, customer_ids: Iterable[int], *, relation_id: int | None = None,
           info: dict[str, Any] | None = None, chain: Iterable[int] = ()) -> Task | None:
    if not _has_rules(corp_id, trigger):
        return None
    return enqueue_task(corp_id, FIRE_TASK, {"trigger": trigger, "customer_ids": list(customer_ids),
                                             "relation_id": relation_id, "info": info or {}, "chain": list(chain)})


def on_customer_added(event: CustomerAdded) -> None:
    _queue(event.corp_id, "customer_added", [event.customer_id], relation_id=event.relation_id,
           info={"state": event.state, "userid": event.userid})


def on_tags_changed(event: TagsChanged) -> None:
    if event.added:
        _queue(event.corp_id, "tag_added", [event.customer_id], relation_id=event.relation_id,
               info={"tag_ids": list(event.added)}, chain=event.chain)
    if event.removed:
        _queue(event.corp_id, "tag_removed", [event.customer_id], relation_id=event.relation_id,
               info={"tag_ids": list(event.removed)}, chain=event.chain)


def on_stage_changed(event: StageChanged) -> None:
    _queue(event.corp_id, "stage_changed", [event.customer_id], info={"from": event.from_stage, "to": event.to_stage},
           chain=event.chain)


def on_followup_written(event: FollowupWritten) -> None:
    _queue(event.corp_id, "followup_written", [event.customer_id])


def on_joined_group_chat(event: JoinedGroupChat) -> None:
    _queue(event.corp_id, "joined_group_chat", [event.customer_id], info={"chat_id": event.chat_id, "state": event.state})


def on_events_received(event: EventsReceived) -> None:
    _queue(event.corp_id, "event", event.customer_ids, info={"types": list(event.types)})


def run_fire_task(task: Task) -> None:
    """The worker's handler of "rules.fire": run the trigger's rules on each customer of the task."""
    payload = task.payload
    for customer_id in payload.get("customer_ids") or []:
        fire(task.corp_id, str(payload["trigger"]), int(customer_id), relation_id=payload.get("relation_id"),
             info=dict(payload.get("info") or {}), chain=payload.get("chain") or ())


# ---------------------------------------------------------------- inactivity, dry run, backfill


def candidate_filter(rule: TagRule) -> dict[str, Any]:
    """The filter of customers the rule could apply to now (its trigger's state as a filter, and its condition)."""
    p = rule.trigger_params or {}
    parts: list[dict[str, Any]] = []
    if rule.trigger == "customer_added" and p.get("state"):
        parts.append({"state": p["state"]})
    elif rule.trigger == "tag_added":
        parts.append({"tag": p["tag_id"]})
    elif rule.trigger == "tag_removed":
        parts.append({"not": {"tag": p["tag_id"]}})
    elif rule.trigger == "stage_changed" and p.get("to"):
        parts.append({"stage": [p["to"]]})
    elif rule.trigger == "inactivity":
        parts.append({"no_followup_days": p["days"]})
    if rule.condition is not None:
        parts.append(rule.condition)
    return {"all": parts}


def candidates(rule: TagRule) -> Any:
    """The customers the rule could apply to now (a query of customer ids)."""
    tree = candidate_filter(rule)
    if not tree["all"]:
        return select(Customer.id).where(Customer.corp_id == rule.corp_id, Customer.id.in_(
            select(FollowRelation.customer_id).where(FollowRelation.corp_id == rule.corp_id,
                                                     FollowRelation.status == "active")))
    return compile_filter(rule.corp_id, tree)


def dry_run(rule: TagRule) -> dict[str, Any]:
    """Try the rule on existing customers without changing anything: how many match, how many would change."""
    ids = list(db.session.scalars(candidates(rule).order_by(Customer.id).limit(DRY_RUN_LIMIT + 1)))
    truncated = len(ids) > DRY_RUN_LIMIT
    change, sample = 0, cast(list[dict[str, Any]], [])
    for customer_id in ids[:DRY_RUN_LIMIT]:
        customer = db.session.get(Customer, customer_id)
        if customer is not None and would_change(rule, customer):
            change += 1
            if len(sample) < SAMPLE:
                sample.append({"external_userid": customer.external_userid, "name": customer.name,
                               "stage": customer.stage})
    return {"matched": min(len(ids), DRY_RUN_LIMIT), "would_change": change, "sample": sample,
            "truncated": truncated}


def run_inactivity(corp_id: str, now: dt.datetime | None = None) -> int:
    """Evaluate every inactivity rule on the customers it matches now; how many customers changed."""
    changed = 0
    for rule in db.session.scalars(select(TagRule).where(TagRule.corp_id == corp_id, TagRule.trigger == "inactivity",
                                                         TagRule.enabled.is_(True), TagRule.deleted_at.is_(None))).all():
        for customer_id in list(db.session.scalars(candidates(rule).order_by(Customer.id))):
            customer = db.session.get(Customer, customer_id)
            if customer is not None and would_change(rule, customer):
                changed += apply_rule(rule, customer_id, "inactivity")
    return changed


def tag_names(corp_id: str, tag_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(tag_ids))
    if not ids:
        return {}
    return dict(db.session.execute(select(Tag.tag_id, Tag.name).where(Tag.corp_id == corp_id,
                                                                      Tag.tag_id.in_(ids))).tuples().all())
