"""How the console names things people should never see as codes: staff members (张伟, not zhangwei),
audit actors (自动规则「展会客户」, not rule:3), channels (展会, not zhanhui2024)."""

from __future__ import annotations

from typing import Callable, Iterable

from flask import Flask, g
from sqlalchemy import select

from core.db import db
from crm.models import Customer, Staff, Tag
from crm.service import state_labels
from identity.web import current_principal
from tagging.rules.models import TagRule

SYSTEM_ACTORS = {"wecom": "企业微信", "sync": "同步", "system": "系统", "system:tiers": "系统（价值分层）",
                 "system:stages": "系统（客户阶段）", "test": "系统"}


def staff_names(corp_id: str, userids: Iterable[str]) -> dict[str, str]:
    """userid → name for the staff members named (a member without a name keeps the userid)."""
    wanted = sorted({u for u in userids if u})
    if not wanted:
        return {}
    rows = db.session.execute(select(Staff.userid, Staff.name).where(Staff.corp_id == corp_id,
                                                                     Staff.userid.in_(wanted)))
    return {userid: name or userid for userid, name in rows}


def actor_labels(corp_id: str, actors: Iterable[str]) -> dict[str, str]:
    """An audit row's actor in words: a staff member's name, 自动规则「…」, API 令牌「…」, 企业微信, 同步…"""
    actors = {a for a in actors if a}
    rule_ids = {int(a.split(":", 1)[1]) for a in actors if a.startswith("rule:") and a.split(":", 1)[1].isdigit()}
    rules = dict(db.session.execute(select(TagRule.id, TagRule.name).where(TagRule.corp_id == corp_id,
                                                                           TagRule.id.in_(sorted(rule_ids))))
                 .tuples().all()) if rule_ids else {}
    names = staff_names(corp_id, {a for a in actors if ":" not in a and a not in SYSTEM_ACTORS})
    out: dict[str, str] = {}
    for actor in actors:
        kind, _, rest = actor.partition(":")
        if actor in SYSTEM_ACTORS:
            out[actor] = SYSTEM_ACTORS[actor]
        elif kind == "rule" and rest.isdigit():
            out[actor] = f"自动规则「{rules[int(rest)]}」" if int(rest) in rules else "自动规则（已删除）"
        elif kind == "token":
            out[actor] = f"API 令牌「{rest}」"
        elif kind == "system":
            out[actor] = "系统"
        else:
            out[actor] = names.get(actor, actor)
    return out


def channel_names(corp_id: str) -> dict[str, str]:
    """Channel names by their State (`crm.service.state_labels`: written by the channels package when a
    channel is created or renamed, or a State made in WeCom's admin console is named). A State without a
    name shows as itself."""
    return state_labels(corp_id)


# ---------------------------------------------------------------- template filters (one lookup per name and request)


def _cached(kind: str, key: str, load: Callable[[str, str], str]) -> str:
    cache: dict[tuple[str, str], str] = g.setdefault("_console_labels", {})
    if (kind, key) not in cache:
        found = current_principal()
        cache[(kind, key)] = load(found.corp_id, key) if found is not None and key else key
    return cache[(kind, key)]


def _customer(corp_id: str, external_userid: str) -> str:
    name = db.session.scalar(select(Customer.name).where(Customer.corp_id == corp_id,
                                                         Customer.external_userid == external_userid))
    return name or "未同步的客户"


def _tag(corp_id: str, tag_id: str) -> str:
    row = db.session.execute(select(Tag.name, Tag.deleted_at).where(Tag.corp_id == corp_id, Tag.tag_id == tag_id)).first()
    return "未知标签" if row is None else row[0] + ("（已删除）" if row[1] else "")


def staff_name(userid: str | None) -> str:
    """`{{ userid | staff_name }}`: 张伟 (the userid when the member is unknown)."""
    return _cached("staff", userid or "", lambda corp, u: staff_names(corp, [u]).get(u, u))


def actor_name(actor: str | None) -> str:
    """`{{ row.actor | actor_name }}`: 张伟, 自动规则「…」, API 令牌「…」, 企业微信…"""
    return _cached("actor", actor or "", lambda corp, a: actor_labels(corp, [a]).get(a, a))


def customer_name(external_userid: str | None) -> str:
    """`{{ external_userid | customer_name }}`: the customer's name."""
    return _cached("customer", external_userid or "", _customer)


def tag_name(tag_id: str | None) -> str:
    """`{{ tag_id | tag_name }}`: the tag's name (marked when deleted)."""
    return _cached("tag", tag_id or "", _tag)


def init_app(app: Flask) -> None:
    for fn in (staff_name, actor_name, customer_name, tag_name):
        app.add_template_filter(fn, fn.__name__)
