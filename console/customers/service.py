"""The customer page (客户详情): everything the chat sidebar shows (the 360° view: profile, tags, stage and
tier, colleagues, group chats, the merged timeline), plus the full history of the customer's follow
relations, the audit trail of their tag changes and their stage history.

Visibility is the sidebar's: the customer must have a relation (active or not) with a staff member in
the principal's scope, otherwise it is answered like a missing customer (404). The console never
calls WeCom to show a page: a customer not synced yet is simply not there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from core.db import db
from crm.models import AuditLog, Customer, FollowRelation, Tag
from identity.service import Principal
from sidebar import add_way_label
from sidebar import service as sidebar
from tagging.lifecycle.stages import history as stage_changes

from ..labels import actor_labels, channel_names, staff_names

HISTORY_ACTIONS = ("customer.added", "customer.half_added", "relation.deleted", "relation.transferred",
                   "relation.deleted_by_customer", "transfer.failed")
ADDED, LOST = ("customer.added", "customer.half_added"), ("relation.deleted", "relation.transferred",
                                                          "relation.deleted_by_customer")
LOSS_WORDS = {"del_external_contact": "{name} 删除了客户", "del_follow_user": "客户删除了 {name}",
              "transferred": "客户已从 {name} 交接给同事", "sync": "同步时发现 {name} 与客户已不是联系人"}
TRANSFER_FAILURES = {"customer_refused": "客户拒绝了交接", "customer_limit_exceed": "接替成员的客户数已达上限"}
TAG_SOURCES = {"staff": "侧边栏", "api": "API", "rule": "自动规则", "bulk": "批量打标签", "wecom": "企业微信",
               "sync": "同步", "merge": "标签合并", "mirror": "阶段/分层同步", "backfill": "规则补打"}
AUDIT_LIMIT = 200


def load(principal: Principal, external_userid: str) -> Customer:
    """The customer if the principal may see it (never fetched from WeCom here)."""
    return sidebar.load_customer(principal, external_userid, fetch=False)


def page(principal: Principal, customer: Customer) -> dict[str, Any]:
    """What the customer page shows."""
    profile = sidebar.profile(principal, customer)
    relations = sorted(customer.relations, key=lambda r: (r.status != "active", -(r.added_at or _EPOCH).timestamp()))
    audits = list(db.session.scalars(
        select(AuditLog).where(AuditLog.corp_id == customer.corp_id, AuditLog.target_type == "customer",
                               AuditLog.target_id == customer.external_userid, AuditLog.action.in_(HISTORY_ACTIONS))
        .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(AUDIT_LIMIT)))
    userids = {r.userid for r in relations} | {str(a.detail.get("userid") or a.detail.get("takeover_userid") or "")
                                               for a in audits}
    names = staff_names(customer.corp_id, userids)
    channels = channel_names(customer.corp_id)
    stages = stage_changes(customer.corp_id, customer.id)
    actors = actor_labels(customer.corp_id, [s["actor"] for s in stages])
    return {
        "profile": profile,
        "relations": [_relation(r, names, channels) for r in relations],
        "history": relation_history(relations, audits, names, channels),
        "tag_changes": tag_changes(customer, {r.id: r.userid for r in relations}, names),
        "stages": [{**s, "actor_name": actors.get(s["actor"], s["actor"])} for s in stages],
    }


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _relation(r: FollowRelation, names: dict[str, str], channels: dict[str, str]) -> dict[str, Any]:
    return {"userid": r.userid, "name": names.get(r.userid, r.userid), "remark": r.remark,
            "remark_corp_name": r.remark_corp_name, "description": r.description, "mobiles": r.remark_mobiles or [],
            "channel": channels.get(r.state) or r.state, "add_way": add_way_label(r.add_way), "added_at": r.added_at,
            "active": r.status == "active", "lost_at": r.lost_at,
            "lost": LOSS_WORDS.get(r.lost_reason or "", "{name} 与客户已不是联系人").format(
                name=names.get(r.userid, r.userid)) if r.status != "active" else ""}


def relation_history(relations: list[FollowRelation], audits: list[AuditLog], names: dict[str, str],
                     channels: dict[str, str]) -> list[dict[str, Any]]:
    """Every add, loss, handover and failed handover of the customer, newest first.

    A relation row holds its latest add and loss (with the times WeCom gave); the audit log holds those
    that came before (a customer deleted and added again), and failed handovers."""
    events: list[dict[str, Any]] = []
    latest: dict[str, FollowRelation] = {r.userid: r for r in relations}
    for r in relations:
        name = names.get(r.userid, r.userid)
        if r.added_at:
            how = "，".join(x for x in (f"渠道：{channels.get(r.state) or r.state}" if r.state else "",
                                        f"方式：{add_way_label(r.add_way)}") if x)
            events.append({"at": r.added_at, "kind": "added", "text": f"{name} 添加了客户", "detail": how})
        if r.status != "active" and r.lost_at:
            events.append({"at": r.lost_at, "kind": "lost" if r.lost_reason != "transferred" else "transferred",
                           "text": LOSS_WORDS.get(r.lost_reason or "", "{name} 与客户已不是联系人").format(name=name),
                           "detail": ""})
    for a in audits:
        userid = str(a.detail.get("userid") or "")
        row = latest.get(userid)
        name = names.get(userid, userid)
        if a.action == "transfer.failed":
            taker = str(a.detail.get("takeover_userid") or "")
            reason = TRANSFER_FAILURES.get(str(a.detail.get("fail_reason")), "交接未成功")
            events.append({"at": a.at, "kind": "lost", "text": f"交接给 {names.get(taker, taker)} 未成功",
                           "detail": reason})
        elif row is not None and a.action in ADDED and row.added_at and a.at < row.added_at:
            events.append({"at": a.at, "kind": "added", "text": f"{name} 添加了客户", "detail": "后来曾被删除，又重新添加"})
        elif row is not None and a.action in LOST and _earlier_loss(row, a.at):
            reason = {"relation.deleted_by_customer": "del_follow_user",
                      "relation.transferred": "transferred"}.get(a.action, str(a.detail.get("reason") or ""))
            events.append({"at": a.at, "kind": "lost",
                           "text": LOSS_WORDS.get(reason, "{name} 与客户已不是联系人").format(name=name),
                           "detail": "之后又重新添加"})
    return sorted(events, key=lambda e: e["at"], reverse=True)


def _earlier_loss(row: FollowRelation, at: dt.datetime) -> bool:
    """A loss the row no longer shows: the relation is active again, or was lost again later."""
    if row.status == "active":
        return row.added_at is not None and at < row.added_at
    return row.lost_at is not None and at < row.lost_at


def tag_changes(customer: Customer, owners: dict[int, str], names: dict[str, str]) -> list[dict[str, Any]]:
    """The audit trail of the customer's tag changes (and WeCom's refusals), newest first, in words."""
    if not owners:
        return []
    rows = list(db.session.scalars(
        select(AuditLog).where(AuditLog.corp_id == customer.corp_id, AuditLog.target_type == "relation",
                               AuditLog.target_id.in_([str(i) for i in owners]),
                               AuditLog.action.in_(("tags.change", "tags.change_failed")))
        .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(AUDIT_LIMIT)))
    tag_ids = {str(t) for a in rows for key in ("add", "remove") for t in (a.detail.get(key) or [])}
    tags = {t.tag_id: t for t in db.session.scalars(select(Tag).where(Tag.corp_id == customer.corp_id,
                                                                      Tag.tag_id.in_(sorted(tag_ids))))}
    actors = actor_labels(customer.corp_id, {a.actor for a in rows})

    def tag_names(ids: Any) -> list[str]:
        out = []
        for tag_id in ids or []:
            tag = tags.get(str(tag_id))
            out.append("未知标签" if tag is None else tag.name + ("（已删除）" if tag.deleted_at else ""))
        return out

    changes = []
    for a in rows:
        owner = owners.get(int(a.target_id)) if a.target_id.isdigit() else None
        failed = a.action == "tags.change_failed"
        changes.append({
            "at": a.at, "actor": "企业微信" if failed else actors.get(a.actor, a.actor),
            "owner": names.get(owner or "", owner or ""), "added": tag_names(a.detail.get("add")),
            "removed": tag_names(a.detail.get("remove")), "failed": failed,
            "source": TAG_SOURCES.get(str(a.detail.get("source") or ""), ""),
            "message": str(a.detail.get("message") or "企业微信拒绝了这次修改") if failed else ""})
    return changes
