"""Behaviour events from other touch points (page views, link clicks, forms, orders), stored idempotently.

`store_events` takes a batch (≤ 1000) and answers per event: stored, duplicate (the corp already has
that event id), unknown_customer, or invalid. Stored events are announced (`core.signals.events_received`;
the auto-tagging rules evaluate their thresholds from there, in the worker). Flushes; the request
commits once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from core.db import db, utcnow
from core.errors import UserValueError
from core.signals import EventsReceived, events_received
from core.time import CHINA
from crm.models import Customer, FollowRelation
from identity.service import Scope

from .models import BehaviorEvent

log = logging.getLogger("scrm.tagging")

MAX_BATCH = 1000
MAX_PROPERTIES_BYTES = 4096
EVENT_ID = re.compile(r"^[\w.:\-/#@]{1,128}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_FUTURE = dt.timedelta(minutes=10)

def _parse_at(value: Any, now: dt.datetime) -> dt.datetime:
    if value in (None, ""):
        return now
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise UserValueError("at 应为 ISO 时间（如 2026-01-31T10:00:00+08:00）或 epoch 秒") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=CHINA)
    else:
        raise UserValueError("at 应为 ISO 时间或 epoch 秒")
    moment = moment.astimezone(dt.timezone.utc)
    if moment > now + MAX_FUTURE:
        raise UserValueError("at 不能是未来的时间")
    return moment


def _path_of(properties: dict[str, Any]) -> str | None:
    """The page path an event is about: `properties.path`, else the path of `properties.url`."""
    path = properties.get("path")
    if not isinstance(path, str) or not path:
        url = properties.get("url")
        path = urlsplit(url).path if isinstance(url, str) and url else None
    return path[:512] if path else None


def _amount_of(kind: str, properties: dict[str, Any]) -> Decimal | None:
    value = properties.get("amount")
    if value is None:
        if kind == "order":
            raise UserValueError("订单事件需要 properties.amount（金额）")
        return None
    if isinstance(value, bool):
        raise UserValueError("properties.amount 应为金额")
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise UserValueError("properties.amount 应为金额") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e12"):
        raise UserValueError("properties.amount 超出范围")
    return amount


def _clean(item: Any, now: dt.datetime) -> dict[str, Any]:
    """One event of the batch, validated; raises UserValueError with a message for the sender."""
    if not isinstance(item, dict):
        raise UserValueError("事件应为 JSON 对象")
    event_id = item.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise UserValueError("id 应为 1 到 128 个字符（字母、数字、_.:-/#@）")
    kind = item.get("type")
    if not isinstance(kind, str) or not EVENT_TYPE.match(kind):
        raise UserValueError("type 应为小写事件类型，如 page_view、link_click、form、order")
    ext, union = item.get("external_userid"), item.get("unionid")
    if not (isinstance(ext, str) and ext) and not (isinstance(union, str) and union):
        raise UserValueError("需要 external_userid 或 unionid")
    properties = item.get("properties") or {}
    if not isinstance(properties, dict):
        raise UserValueError("properties 应为 JSON 对象")
    if len(json.dumps(properties, ensure_ascii=False).encode()) > MAX_PROPERTIES_BYTES:
        raise UserValueError(f"properties 最多 {MAX_PROPERTIES_BYTES} 字节")
    return {"event_id": event_id, "type": kind, "at": _parse_at(item.get("at"), now),
            "external_userid": ext if isinstance(ext, str) and ext else None,
            "unionid": union if isinstance(union, str) and union else None,
            "properties": properties, "path": _path_of(properties), "amount": _amount_of(kind, properties)}


def _resolve(corp_id: str, events: list[dict[str, Any]], scope: Scope | None) -> tuple[dict[str, int], dict[str, int]]:
    """Customer ids by external_userid and by unionid, for the customers named in the batch (and in scope)."""
    exts = sorted({e["external_userid"] for e in events if e["external_userid"]})
    unions = sorted({e["unionid"] for e in events if e["unionid"]})
    by_ext: dict[str, int] = {}
    by_union: dict[str, int] = {}
    in_scope = None
    if scope is not None and not scope.all:
        in_scope = select(FollowRelation.customer_id).where(FollowRelation.corp_id == corp_id,
                                                            FollowRelation.userid.in_(sorted(scope.userids)))
    for keys, column, target in ((exts, Customer.external_userid, by_ext), (unions, Customer.unionid, by_union)):
        for start in range(0, len(keys), 500):
            query = select(column, Customer.id).where(Customer.corp_id == corp_id, column.in_(keys[start:start + 500]))
            if in_scope is not None:
                query = query.where(Customer.id.in_(in_scope))
            for key, customer_id in db.session.execute(query.order_by(Customer.id)):
                target.setdefault(key, customer_id)
    return by_ext, by_union


def _insert(rows: list[dict[str, Any]]) -> set[str]:
    """INSERT … ON CONFLICT (corp_id, event_id) DO NOTHING; the event ids actually inserted."""
    table = cast(Table, BehaviorEvent.__table__)
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted: set[str] = set()
    for start in range(0, len(rows), 200):
        stmt = (insert(table).values(rows[start:start + 200])
                .on_conflict_do_nothing(index_elements=[table.c.corp_id, table.c.event_id])
                .returning(table.c.event_id))
        inserted.update(db.session.execute(stmt).scalars())
    return inserted


def store_events(corp_id: str, items: Any, actor: str, scope: Scope | None = None) -> dict[str, Any]:
    """Store a batch of events; answer `{"stored", "duplicates", "rejected", "results": [...]}` in batch order.

    Each result is `{"id", "status": "stored"|"duplicate"|"unknown_customer"|"invalid", "error"?}`.
    Raises UserValueError only for a batch that is not a list or is too large.
    """
    if not isinstance(items, list):
        raise UserValueError("请求体应为事件列表，或 {\"events\": [...]}")
    if len(items) > MAX_BATCH:
        raise UserValueError(f"一批最多 {MAX_BATCH} 个事件，收到 {len(items)} 个")
    now = utcnow()
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in items:
        raw_id = item.get("id") if isinstance(item, dict) else None
        raw_id = raw_id[:128] if isinstance(raw_id, str) else None  # echoed back only when it is text
        try:
            event = _clean(item, now)
        except UserValueError as exc:
            results.append({"id": raw_id, "status": "invalid", "error": str(exc)})
            continue
        if event["event_id"] in seen:
            results.append({"id": event["event_id"], "status": "duplicate"})
            continue
        seen.add(event["event_id"])
        results.append({"id": event["event_id"], "status": "pending"})
        valid.append((len(results) - 1, event))
    by_ext, by_union = _resolve(corp_id, [e for _, e in valid], scope)
    rows: list[dict[str, Any]] = []
    for index, event in valid:
        customer_id = by_ext.get(event["external_userid"] or "") or by_union.get(event["unionid"] or "")
        if customer_id is None:
            results[index] = {"id": event["event_id"], "status": "unknown_customer",
                              "error": "找不到该客户（external_userid 或 unionid 不属于本企业的客户）"}
            continue
        rows.append({"corp_id": corp_id, "event_id": event["event_id"], "customer_id": customer_id,
                     "type": event["type"], "at": event["at"], "path": event["path"], "amount": event["amount"],
                     "properties": event["properties"], "source": actor, "received_at": now})
    inserted = _insert(rows) if rows else set()
    stored_customers: dict[int, None] = {}
    by_event = {r["event_id"]: r for r in rows}
    for index, event in valid:
        if results[index]["status"] != "pending":
            continue
        if event["event_id"] in inserted:
            results[index]["status"] = "stored"
            stored_customers[by_event[event["event_id"]]["customer_id"]] = None
        else:
            results[index]["status"] = "duplicate"
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("stored", "duplicate")}
    rejected = len(results) - counts["stored"] - counts["duplicate"]
    log.info("tagging.events.stored corp=%s stored=%s duplicates=%s rejected=%s actor=%s",
             corp_id, counts["stored"], counts["duplicate"], rejected, actor)
    if stored_customers:
        types = sorted({r["type"] for r in rows if r["event_id"] in inserted})
        events_received.send(EventsReceived(corp_id, tuple(stored_customers), tuple(types)))
    return {"stored": counts["stored"], "duplicates": counts["duplicate"], "rejected": rejected, "results": results}


def recent_events(corp_id: str, customer_id: int, limit: int = 20,
                  types: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The customer's newest events for a timeline (the sidebar), newest first."""
    query = select(BehaviorEvent).where(BehaviorEvent.corp_id == corp_id, BehaviorEvent.customer_id == customer_id)
    if types:
        query = query.where(BehaviorEvent.type.in_(sorted(set(types))))
    rows = db.session.scalars(query.order_by(BehaviorEvent.at.desc(), BehaviorEvent.id.desc()).limit(limit))
    return [{"id": r.event_id, "type": r.type, "at": r.at.isoformat(), "path": r.path,
             "amount": str(r.amount) if r.amount is not None else None, "properties": r.properties} for r in rows]
