"""Operational endpoints of the customer base: `/healthz` (what an operator watches) and `/livez`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select, text

from core.db import db
from core.tasks import task_stats
from wecom.client import call_counts
from wecom.service import inbox_stats, outbox_stats
from core.settings import settings

from .models import Customer, FollowRelation, SyncRun

bp = Blueprint("crm", __name__)

# A backlog older than this is reported under "degraded" (the status stays "ok": the server works).
BACKLOG_AGE_S = 300.0


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness plus what an operator watches: database, last sync, WeCom calls."""
    corp_id = settings().WECOM_CORP_ID
    body: dict[str, Any] = {"status": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # the one place where any database failure is a health answer
        return jsonify({"status": "error", "database": f"unreachable: {exc.__class__.__name__}"}), 503
    last = db.session.scalar(
        select(SyncRun).where(SyncRun.corp_id == corp_id).order_by(SyncRun.started_at.desc()).limit(1))
    body["last_sync"] = None if last is None else {
        "status": last.status, "started_at": last.started_at.isoformat(),
        "finished_at": last.finished_at.isoformat() if last.finished_at else None, "counts": last.counts,
    }
    body["customers"] = db.session.scalar(select(func.count()).select_from(Customer)
                                          .where(Customer.corp_id == corp_id))
    body["active_relations"] = db.session.scalar(
        select(func.count()).select_from(FollowRelation)
        .where(FollowRelation.corp_id == corp_id, FollowRelation.status == "active"))
    body["wecom_calls"] = call_counts()
    body["inbox"] = inbox_stats(corp_id)
    body["tasks"] = task_stats(corp_id)
    body["outbox"] = outbox_stats(corp_id)
    body["degraded"] = _degraded(body["inbox"], body["outbox"], body["tasks"])
    return jsonify(body)


def _degraded(inbox: dict[str, Any], outbox: dict[str, Any], tasks: dict[str, Any]) -> list[str]:
    """Reasons an operator should look, in plain words (empty when all is well)."""
    reasons = []
    if tasks["oldest_pending_age_s"] > BACKLOG_AGE_S:
        reasons.append(f"tasks: oldest pending task waits {tasks['oldest_pending_age_s']:.0f}s (is a worker running?)")
    if tasks["failed"]:
        reasons.append(f"tasks: {tasks['failed']} failed task(s); see `flask tasks replay`")
    if inbox["oldest_pending_age_s"] > BACKLOG_AGE_S:
        reasons.append(f"inbox: oldest pending event waits {inbox['oldest_pending_age_s']:.0f}s "
                       "(is a worker running?)")
    if outbox["oldest_pending_age_s"] > BACKLOG_AGE_S:
        reasons.append(f"outbox: oldest pending command waits {outbox['oldest_pending_age_s']:.0f}s "
                       "(WeCom unreachable or no worker running?)")
    if inbox["failed"]:
        reasons.append(f"inbox: {inbox['failed']} failed event(s); see `flask wecom replay --failed`")
    if outbox["failed"]:
        reasons.append(f"outbox: {outbox['failed']} failed command(s)")
    return reasons


@bp.get("/livez")
def livez() -> Any:
    """The process answers; touches nothing (a baseline for benchmarks and liveness probes)."""
    return jsonify({"status": "ok"})
