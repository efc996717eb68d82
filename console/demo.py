"""The demo's activity: what a corp using the product for a while has that WeCom does not keep, so the
demo's overview, customer pages and sidebar have something to show (`flask console demo-activity`,
run by `dev.py demo` after the first sync; refused outside demo mode).

Deterministic for a given corp (customers taken in the order of their external_userid, a seeded
random generator). Loaded, not re-lived: the stages (with their history and audit rows) and follow-up
notes are bulk-inserted with times spread over the last weeks, never before the customer was added (a
service call per row would take minutes on PostgreSQL and would fire the auto-tagging rules on made-up
history); behaviour events go through `store_events` (the API's own path), and the value tiers are
computed from them by `compute_tiers`. Applied once: a second run finds its audit row and does nothing.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import insert, select, update

from core.db import db, utcnow
from crm.models import AuditLog, Customer, FollowRelation, FollowUp, StageChange
from crm.service import audit
from tagging.lifecycle.events import store_events
from tagging.lifecycle.stages import ensure_stages, list_stages
from tagging.lifecycle.tiers import compute_tiers

ACTOR = "system:demo"
NOTES = ["电话沟通，客户对专业版比较感兴趣，约了下周演示", "已发送报价单，等待客户内部审批", "客户反馈价格偏高，申请了九折优惠",
         "上门拜访，见到了采购负责人，需求明确", "客户在比较两家供应商，下周三前给答复", "合同已寄出，等待盖章回寄",
         "回访：系统使用顺利，客户愿意推荐同行", "客户咨询发票和付款方式，已说明", "展会上认识，加微信后发了产品资料",
         "客户暂时没有预算，明年一季度再联系"]
PAGES = [("/products/pro", "专业版介绍"), ("/products/enterprise", "企业版介绍"), ("/pricing", "价格说明"),
         ("/cases/education", "教育行业案例"), ("/cases/retail", "零售行业案例"), ("/blog/scrm-guide", "私域运营指南")]
FORMS = ["免费试用申请", "预约演示", "下载白皮书"]
PRODUCTS = [("基础版年费", 2980), ("专业版年费", 6800), ("企业版年费", 19800), ("实施服务", 5000), ("培训课程", 1280)]
STAGE_WEIGHTS = (40, 25, 15, 7)  # of the funnel stages in order; the rest spread over the lost stages


def applied(corp_id: str) -> bool:
    return db.session.scalar(select(AuditLog.id).where(AuditLog.corp_id == corp_id,
                                                       AuditLog.action == "demo.activity").limit(1)) is not None


def _owners(corp_id: str) -> list[tuple[Customer, str, dt.datetime]]:
    """(customer, the staff member of their first active relation, when added), by external_userid."""
    rows = db.session.execute(
        select(Customer, FollowRelation.userid, FollowRelation.added_at)
        .join(FollowRelation, FollowRelation.customer_id == Customer.id)
        .where(Customer.corp_id == corp_id, FollowRelation.status == "active")
        .order_by(Customer.external_userid, FollowRelation.added_at, FollowRelation.id)).all()
    seen: set[int] = set()
    out = []
    for customer, userid, added in rows:
        if customer.id not in seen:
            seen.add(customer.id)
            out.append((customer, userid, added or utcnow()))
    return out


def _between(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    if end <= start:
        return end
    return start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def demo_activity(corp_id: str, *, seed: int = 2026, now: dt.datetime | None = None,
                  share: float = 1.0) -> dict[str, Any]:
    """Write the demo's stages, notes, events and tiers (flushes; the caller commits); `share` of the
    customers get any (the tests use a part of the corp: every row costs a facets refresh on PostgreSQL)."""
    if applied(corp_id):
        return {"applied": False}
    rng = random.Random(seed)
    now = now or utcnow()
    ensure_stages(corp_id)
    stages = list_stages(corp_id)
    ladder = [s.name for s in stages if not s.is_lost]
    lost = [s.name for s in stages if s.is_lost]
    staged: dict[str, list[int]] = {}
    changes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    trail: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for customer, userid, added in _owners(corp_id):
        if rng.random() >= share:
            continue
        recent = max(added, now - dt.timedelta(days=60))
        if rng.random() < 0.7 and ladder:
            target = rng.choices(ladder + lost, weights=list(STAGE_WEIGHTS[:len(ladder)]) + [3] * len(lost))[0]
            at = _between(rng, recent, now)
            staged.setdefault(target, []).append(customer.id)
            changes.append({"corp_id": corp_id, "customer_id": customer.id, "from_stage": customer.stage,
                            "to_stage": target, "actor": userid, "at": at})
            trail.append({"corp_id": corp_id, "actor": userid, "action": "stage.set", "target_type": "customer",
                          "target_id": customer.external_userid, "at": at,
                          "detail": {"from": customer.stage, "to": target, "source": "staff"}})
        for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
            notes.append({"corp_id": corp_id, "customer_id": customer.id, "userid": userid,
                          "content": rng.choice(NOTES), "created_at": _between(rng, recent, now)})
        if rng.random() < 0.3:
            events += _events(rng, customer, recent, now, len(events))
    for stage, ids in staged.items():
        for start in range(0, len(ids), 1000):
            db.session.execute(update(Customer).where(Customer.id.in_(ids[start:start + 1000])).values(stage=stage)
                               .execution_options(synchronize_session=False))
    for model, rows in ((StageChange, changes), (FollowUp, notes), (AuditLog, trail)):
        for start in range(0, len(rows), 1000):
            # one multi-row INSERT per chunk (the facets' triggers run once per statement on PostgreSQL)
            db.session.execute(insert(model.__table__).values(rows[start:start + 1000]))
    counts = {"stages": len(changes), "followups": len(notes), "events": 0}
    for start in range(0, len(events), 1000):
        counts["events"] += store_events(corp_id, events[start:start + 1000], ACTOR)["stored"]
    tiers = compute_tiers(corp_id, now=now, actor=ACTOR)
    audit(corp_id, ACTOR, "demo.activity", "corp", corp_id, {**counts, "seed": seed})
    db.session.flush()
    return {"applied": True, **counts, "tiers": tiers["tiers"]}


def _events(rng: random.Random, customer: Customer, start: dt.datetime, end: dt.datetime,
            offset: int) -> list[dict[str, Any]]:
    """A believable burst of behaviour for one customer: page views, a link or a form, maybe orders."""
    out: list[dict[str, Any]] = []

    def event(kind: str, properties: dict[str, Any]) -> None:
        out.append({"id": f"demo-{customer.external_userid[-12:]}-{offset + len(out)}", "type": kind,
                    "external_userid": customer.external_userid,
                    "at": _between(rng, start, end).isoformat(), "properties": properties})

    for _ in range(rng.randint(1, 6)):
        path, title = rng.choice(PAGES)
        event("page_view", {"path": path, "title": title})
    if rng.random() < 0.4:
        path, title = rng.choice(PAGES)
        event("link_click", {"url": f"https://www.example.com{path}", "title": title})
    if rng.random() < 0.25:
        event("form", {"form_name": rng.choice(FORMS)})
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
        product, price = rng.choice(PRODUCTS)
        event("order", {"product": product, "amount": price, "order_id": f"SO{rng.randrange(10**8):08d}"})
    return out

