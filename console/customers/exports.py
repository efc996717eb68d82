"""CSV exports of the customer list as a job with progress (`models.CustomerExport`).

The request records the export (its filters and sort, the requester's role and userid, the total) and,
once its commit made the row visible, starts it in a thread of that process; the periodic runner
(`jobs.py`) starts exports no process took and resumes those whose process died. The job walks the
list page by page with the list's own keyset cursor and commits each page's CSV text as one part,
with the cursor, so a resumed job neither repeats nor skips a customer. The download streams the parts
in order: a UTF-8 file with a BOM (Excel reads the Chinese), times in China time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import threading
from typing import Any, Iterator

from flask import Flask, current_app
from sqlalchemy import delete, select, update

from core.db import db, rowcount, utcnow
from core.time import china_datetime
from core.uow import after_commit
from crm.service import audit
from identity.service import Principal

from ..labels import channel_names
from .listing import STATUSES, ListParams, list_page, total
from .models import CustomerExport, CustomerExportPart

log = logging.getLogger("scrm.console.exports")

CHUNK = 500
STALE = dt.timedelta(minutes=5)
EXPORT_TTL = dt.timedelta(days=7)
HEADER = ["客户名称", "客户ID", "备注", "企业", "职位", "手机号", "跟进人", "标签", "阶段", "渠道", "添加时间",
          "最近跟进", "状态"]
STATUS_WORDS = {"pending": "等待开始", "running": "正在导出", "done": "已完成", "failed": "导出失败"}


def start_export(principal: Principal, params: ListParams) -> CustomerExport:
    """Record an export of what the principal sees with these filters (flush); the caller commits, then
    `start_after_commit` runs it."""
    export = CustomerExport(corp_id=principal.corp_id, params=params.as_dict(), role=principal.role,
                            userid=principal.userid, status="pending", total=total(principal, params),
                            created_by=principal.actor)
    db.session.add(export)
    db.session.flush()
    audit(principal.corp_id, principal.actor, "customers.export", "customer_export", str(export.id),
          {"params": params.as_dict(), "total": export.total})
    return export


def start_after_commit(export: CustomerExport) -> None:
    """Run the export in a thread once the request's commit made it visible (unless the app leaves
    exports to the periodic runner: `CONSOLE_EXPORTS_INLINE = False`, as the tests do)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("CONSOLE_EXPORTS_INLINE", True):
        export_id = export.id
        after_commit(lambda: start_thread(app, export_id))


def start_thread(app: Flask, export_id: int) -> threading.Thread:
    def target() -> None:
        with app.app_context():
            try:
                run_export(export_id)
            finally:
                db.session.remove()

    thread = threading.Thread(target=target, name=f"customer-export-{export_id}", daemon=True)
    thread.start()
    return thread


def _claim(export_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(CustomerExport).where(CustomerExport.id == export_id, (CustomerExport.status == "pending") | (
            (CustomerExport.status == "running") & (CustomerExport.heartbeat_at < now - STALE)))
        .values(status="running", heartbeat_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return rowcount(result) == 1


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def csv_rows(rows: list[dict[str, Any]], channels: dict[str, str]) -> list[list[Any]]:
    """The list's rows as the CSV's lines (names, not codes; China time)."""
    return [[r["name"], r["external_userid"], r["remark"], r["corp_name"], r["position"], "、".join(r["mobiles"]),
             "、".join(o["name"] for o in r["owners"]),
             "；".join(f"{t['group_name']}：{t['name']}" for t in r["tags"]), r["stage"] or "",
             "、".join(channels.get(s) or s or "未标记渠道" for s in r["channels"]), china_datetime(r["added_at"]),
             china_datetime(r["last_followup_at"]) if r["last_followup_at"] else "",
             "已流失" if r["lost"] else "跟进中"] for r in rows]


def run_export(export_id: int) -> CustomerExport | None:
    """Run (or resume) an export to its end, one committed part per page; None if someone else holds it."""
    if not _claim(export_id):
        return None
    export = db.session.get(CustomerExport, export_id)
    assert export is not None
    principal = Principal(corp_id=export.corp_id, role=export.role, userid=export.userid, via="session")
    params = ListParams.from_dict(export.params)
    channels = channel_names(export.corp_id)
    try:
        while export.status == "running":
            page = list_page(principal, params, export.cursor, CHUNK)
            text = _csv(csv_rows(page["rows"], channels))
            if export.parts == 0:
                text = "\ufeff" + _csv([HEADER]) + text
            if text:
                export.parts += 1
                db.session.add(CustomerExportPart(corp_id=export.corp_id, export_id=export.id, seq=export.parts,
                                                  content=text))
            export.done += len(page["rows"])
            export.cursor, export.heartbeat_at = page["next_cursor"], utcnow()
            if not page["next_cursor"]:
                export.status, export.finished_at = "done", utcnow()
                export.total = max(export.total, export.done)
            db.session.commit()
    except Exception as exc:
        db.session.rollback()
        export = db.session.get(CustomerExport, export_id)
        assert export is not None
        export.status, export.error, export.finished_at = "failed", f"{exc.__class__.__name__}: {exc}", utcnow()
        db.session.commit()
        log.exception("console.export.failed id=%s", export_id)
    log.info("console.export.finished id=%s status=%s rows=%s", export.id, export.status, export.done)
    return export


def run_pending(corp_id: str) -> int:
    """Run every export no process took (or whose process died); how many ran."""
    now = utcnow()
    ids = list(db.session.scalars(select(CustomerExport.id).where(
        CustomerExport.corp_id == corp_id, (CustomerExport.status == "pending") | (
            (CustomerExport.status == "running") & (CustomerExport.heartbeat_at < now - STALE)))
        .order_by(CustomerExport.id)))
    db.session.rollback()
    return sum(1 for export_id in ids if run_export(export_id) is not None)


def purge_expired(corp_id: str, now: dt.datetime | None = None) -> int:
    """Delete exports (and their files) older than `EXPORT_TTL`; flushes."""
    cutoff = (now or utcnow()) - EXPORT_TTL
    old = select(CustomerExport.id).where(CustomerExport.corp_id == corp_id, CustomerExport.created_at < cutoff)
    db.session.execute(delete(CustomerExportPart).where(CustomerExportPart.export_id.in_(old))
                       .execution_options(synchronize_session=False))
    result = db.session.execute(delete(CustomerExport).where(CustomerExport.corp_id == corp_id,
                                                             CustomerExport.created_at < cutoff)
                                .execution_options(synchronize_session=False))
    return rowcount(result)


def get_export(principal: Principal, export_id: int) -> CustomerExport | None:
    """The principal's own export (an export shows what its requester may see: nobody else opens it)."""
    row = db.session.get(CustomerExport, export_id)
    if row is None or row.corp_id != principal.corp_id or row.created_by != principal.actor:
        return None
    return row


def export_dict(export: CustomerExport) -> dict[str, Any]:
    """The progress the page shows (and polls as JSON)."""
    percent = 100 if export.status == "done" else (min(99, int(export.done * 100 / export.total))
                                                  if export.total else 0)
    return {"id": export.id, "status": export.status, "status_text": STATUS_WORDS.get(export.status, export.status),
            "total": export.total, "done": export.done, "percent": percent,
            "error": "导出时出错了，请重新导出；如仍出错，请联系管理员" if export.error else "",
            "created_at": export.created_at.isoformat(),
            "finished_at": export.finished_at.isoformat() if export.finished_at else None,
            "expires_at": (export.created_at + EXPORT_TTL).isoformat(),
            "status_filter": STATUSES.get(str(export.params.get("status")), "")}


def file_parts(export_id: int) -> Iterator[str]:
    """The CSV text of a finished export, part by part (a few hundred customers each); by id, as the
    response streams after the request's commit."""
    last = 0
    while True:
        parts = db.session.execute(select(CustomerExportPart.seq, CustomerExportPart.content)
                                   .where(CustomerExportPart.export_id == export_id, CustomerExportPart.seq > last)
                                   .order_by(CustomerExportPart.seq).limit(20)).all()
        if not parts:
            return
        for seq, content in parts:
            last = seq
            yield content
