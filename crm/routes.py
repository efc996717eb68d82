"""Operational endpoints of the customer base: `/healthz`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select, text

from extensions import db, settings

from .models import Customer, FollowRelation, SyncRun

bp = Blueprint("crm", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness plus what an operator watches: database, last sync, WeCom calls."""
    from wecom.client import call_counts

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
    return jsonify(body)
