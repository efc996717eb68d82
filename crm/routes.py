"""Operational endpoints: `/healthz` (what an operator and a load balancer watch) and `/livez`.

Health tells the truth from the shared database, so any web process answers for every worker: it is
degraded while a queue's oldest row waits too long, while several rows wait to retry after errors
(WeCom answering 5xx or 45009 now, before anything fails for good), or when several failed for good
recently; one bad callback is something to look at, not a degraded server.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text

from core.db import db, utcnow
from core.models import Task
from core.queue import trouble
from core.settings import settings
from core.tasks import task_stats
from wecom.client import call_counts
from wecom.models import InboxEvent, OutboxCommand
from wecom.service import inbox_stats, outbox_stats

from .models import Customer, FollowRelation, SyncRun

log = logging.getLogger("scrm.crm")

bp = Blueprint("crm", __name__)

# A backlog older than this is reported under "degraded" (the status stays "ok": the server works).
BACKLOG_AGE_S = 300.0


DETAIL_KEY = "scrm.health.detail"  # a callable: may this request see the detail? (set by identity)
WINDOW = dt.timedelta(minutes=10)  # errors within this window describe "now"
RETRYING = 3  # rows retrying after an error at once: the other side is failing, not one bad row
FAILED = 5  # rows failed for good within the window: something is wrong, not one bad callback


@bp.get("/healthz")
def healthz() -> Any:
    """Health. To anyone: `ok`, `degraded` or `error` (503: the database is unreachable), nothing more.
    To an admin (session or API token): the figures and, in plain words, why it is degraded."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # the one place where any database failure is a health answer
        log.error("crm.health.database-unreachable %s", exc.__class__.__name__)
        return jsonify({"status": "error", "reasons": ["数据库无法连接"]}), 503
    corp_id = settings().WECOM_CORP_ID
    queues = {"inbox": (InboxEvent, InboxEvent.processed_at), "outbox": (OutboxCommand, OutboxCommand.done_at),
              "tasks": (Task, Task.done_at)}
    backlog = {"inbox": inbox_stats(corp_id), "outbox": outbox_stats(corp_id), "tasks": task_stats(corp_id)}
    problems = {name: trouble(model, finished, corp_id, window=WINDOW) for name, (model, finished) in queues.items()}
    reasons, attention = _assess(backlog, problems)
    status = "degraded" if reasons else "ok"
    detail = current_app.extensions.get(DETAIL_KEY)
    if detail is None or not detail():
        return jsonify({"status": status})
    last = db.session.scalar(
        select(SyncRun).where(SyncRun.corp_id == corp_id).order_by(SyncRun.started_at.desc()).limit(1))
    body: dict[str, Any] = {"status": status, "degraded": reasons, "attention": attention}
    body["last_sync"] = None if last is None else {
        "status": last.status, "started_at": last.started_at.isoformat(),
        "finished_at": last.finished_at.isoformat() if last.finished_at else None, "counts": last.counts,
    }
    body["customers"] = db.session.scalar(select(func.count()).select_from(Customer)
                                          .where(Customer.corp_id == corp_id))
    body["active_relations"] = db.session.scalar(
        select(func.count()).select_from(FollowRelation)
        .where(FollowRelation.corp_id == corp_id, FollowRelation.status == "active"))
    body["wecom_calls_this_process"] = call_counts()
    for name in queues:
        body[name] = {**backlog[name], **problems[name]}
    body["inbox"]["repeats_last_hour"] = int(db.session.scalar(  # WeCom delivering a callback again
        select(func.coalesce(func.sum(InboxEvent.duplicates), 0)).where(
            InboxEvent.corp_id == corp_id, InboxEvent.received_at >= utcnow() - dt.timedelta(hours=1))) or 0)
    return jsonify(body)


def _assess(backlog: dict[str, dict[str, Any]], problems: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(why it is degraded, what an admin should still look at), in plain words."""
    reasons: list[str] = []
    attention: list[str] = []
    what = {"inbox": ("inbox", "event", "is a worker running?"),
            "outbox": ("outbox", "command", "WeCom unreachable or no worker running?"),
            "tasks": ("tasks", "task", "is a worker running?")}
    for name, (label, noun, hint) in what.items():
        age = backlog[name]["oldest_pending_age_s"]
        if age > BACKLOG_AGE_S:
            reasons.append(f"{label}: the oldest pending {noun} has waited {age:.0f}s ({hint})")
        retrying, failed = problems[name]["retrying"], problems[name]["failed_recently"]
        line = (f"{label}: {retrying['count']} {noun}(s) waiting to retry after an error, latest: "
                f"{retrying['last_error']}")
        if retrying["count"] >= RETRYING:
            reasons.append(line + (" (WeCom is failing now)" if name != "tasks" else ""))
        elif retrying["count"]:
            attention.append(line)
        line = (f"{label}: {failed['count']} {noun}(s) failed in the last {WINDOW.seconds // 60} minutes, latest: "
                f"{failed['last_error']}")
        if failed["count"] >= FAILED:
            reasons.append(line)
        elif failed["count"]:
            attention.append(line)
        if backlog[name]["failed"]:
            attention.append(f"{label}: {backlog[name]['failed']} failed {noun}(s) in all"
                             + ("; see `flask wecom replay --failed`" if name == "inbox" else
                                "; see `flask tasks replay`" if name == "tasks" else ""))
    return reasons, attention


@bp.get("/livez")
def livez() -> Any:
    """The process answers; touches nothing (a baseline for benchmarks and liveness probes)."""
    return jsonify({"status": "ok"})
