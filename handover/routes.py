"""Console pages of the handovers (客户交接), for managers (within their team) and admins:

    /console/handover                 the resigned colleagues waiting for a takeover, the jobs, the settings
    /console/handover/new             the wizard: whose customers (all or some) and chats, to whom, how
                                      distributed, the notice; a preview (who goes where, who cannot move and
                                      why), then confirm
    /console/handover/<id>            a job: progress, per-takeover figures, failures with reasons and the
                                      retry / reassign action, customers and chats by state (paged)
    /console/handover/<id>/export.csv every customer's and chat's result

The wizard's form becomes the same body the API takes (`form_body`), checked by `service.clean`.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, stream_with_context, url_for

from core.errors import ScrmError, UserValueError
from core.uow import mark_failed
from crm.service import audit
from identity.web import principal, require_role, scope_for

from . import service
from .models import C_WAITING, CUSTOMER_STATUSES, KINDS, ONJOB, RESIGNED, RETRYABLE_CHAT, RETRYABLE_CUSTOMER, RUNNING
from .planning import DISTRIBUTION_LABELS, describe
from .waiting import last_refresh, pending_refresh, request_refresh, waiting_staff

bp = Blueprint("handover", __name__, url_prefix="/console/handover", template_folder="templates",
               static_folder="static", static_url_path="/static")

ROLES = service.ROLES
PAGE_SIZE = 50
LIST_SHOWN = 2000  # customers listed in the wizard for picking (beyond: all, or the API)
BADGES = {"done": "ok", "waiting": "info", "queued": "muted", "excluded": "warn", "refused": "danger",
          "limit": "danger", "no_record": "danger", "failed": "danger", "running": "info"}
CUSTOMER_TABS = [("", "全部"), ("waiting", "等待接替"), ("done", "已接替"), ("problem", "未成功"), ("queued", "提交中")]


@bp.app_template_filter("handover_badge")
def badge(status: str) -> str:
    return "badge badge-" + BADGES.get(status, "muted")


# ---------------------------------------------------------------- the index


@bp.get("")
@require_role(*ROLES)
def index() -> Any:
    p = principal()
    before = request.args.get("before", type=int)
    jobs = service.list_jobs(p, before=before, limit=PAGE_SIZE)
    names = service.names_of(p.corp_id, sorted({u for j in jobs for u in (j.handover_userid, *j.takeover_userids,
                                                                           j.creator_userid or "")} - {""}))
    return render_template("handover/index.html", waiting=waiting_staff(p.corp_id, scope_for(p)),
                           jobs=[service.job_dict(j, names) for j in jobs],
                           next_before=jobs[-1].id if len(jobs) == PAGE_SIZE else None,
                           refreshed=last_refresh(p.corp_id), refreshing=pending_refresh(p.corp_id),
                           settings=service.get_settings(p.corp_id), is_admin=p.role == "admin")


@bp.post("/refresh")
@require_role(*ROLES)
def refresh() -> Any:
    p = principal()
    row = request_refresh(p.corp_id, p.actor, "manual")
    audit(p.corp_id, p.actor, "handover.refresh", "handover_refresh", str(row.id), {})
    flash("已开始从企业微信刷新离职成员的待分配客户和客户群，稍后刷新本页查看", "ok")
    return redirect(url_for(".index"))


@bp.post("/settings")
@require_role("admin")
def settings_page() -> Any:
    p = principal()
    try:
        value = int(request.form.get("customer_limit") or "")
    except ValueError:
        value = -1
    try:
        service.save_settings(p.corp_id, p.actor, value)
    except UserValueError as exc:
        mark_failed()
        flash(exc.message, "error")
    else:
        flash(f"已保存：每位接替成员最多 {value:,} 位客户", "ok")
    return redirect(url_for(".index"))


# ---------------------------------------------------------------- the wizard


def form_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The wizard's fields → the body the API takes."""
    get_list = getattr(form, "getlist", lambda k: form.get(k) or [])
    body: dict[str, Any] = {"kind": form.get("kind") or "", "handover_userid": form.get("handover_userid") or "",
                            "takeover_userids": [u for u in get_list("takeover") if u],
                            "distribution": form.get("distribution") or "even",
                            "notice": (form.get("notice") or "").strip() if form.get("kind") == ONJOB else "",
                            "group_chats": form.get("group_chats") == "1"}
    if form.get("customers_mode") == "some":
        body["external_userids"] = [e for e in get_list("customer") if e]
    if form.get("chats_mode") == "some":
        body["chat_ids"] = [c for c in get_list("chat") if c]
    return body


def _form_state(form: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {k: v for k, v in form.items()}
    for key in ("takeover", "customer", "chat"):
        state[key] = set(form.getlist(key)) if hasattr(form, "getlist") else set()
    return state


@bp.route("/new", methods=["GET", "POST"])
@require_role(*ROLES)
def new() -> Any:
    p = principal()
    source = request.form if request.method == "POST" else request.args
    kind = str(source.get("kind")) if source.get("kind") in KINDS else RESIGNED
    handover = source.get("handover_userid") or source.get("handover") or ""
    form = _form_state(request.form) if request.method == "POST" else {
        "kind": kind, "handover_userid": handover, "customers_mode": "all", "chats_mode": "all", "group_chats": "1",
        "distribution": "even", "takeover": set(), "customer": set(), "chat": set()}
    preview = error = None
    if request.method == "POST":
        try:
            if request.form.get("action") == "confirm":
                job = service.create_job(p, form_body(request.form))
                flash(f"已开始交接：{job.counts.get('customers_total', 0)} 位客户、"
                      f"{job.counts.get('chats_total', 0)} 个客户群", "ok")
                return redirect(url_for(".detail", job_id=job.id))
            preview = service.preview(p, form_body(request.form))
        except ScrmError as exc:
            mark_failed()
            error = exc.message
    return render_template("handover/new.html", form=form, kind=kind, handover=handover, preview=preview,
                           error=error, **_wizard_choices(p, kind, handover))


def _wizard_choices(p: Any, kind: str, handover: str) -> dict[str, Any]:
    """What the wizard offers: the people who can be handed over, and (once one is picked) their customers and
    chats and the colleagues who can take them."""
    scope = scope_for(p)
    people = waiting_staff(p.corp_id, scope) if kind == RESIGNED else service.onjob_choices(p)
    chosen = next((x for x in people if x["userid"] == handover), None)
    if chosen is None or not scope.allows(handover):
        return {"people": people, "chosen": None, "customers": [], "chats": [], "takeovers": [], "more": 0}
    customers, chats = service.candidates_of(p.corp_id, kind, handover)
    return {"people": people, "chosen": chosen, "customers": customers[:LIST_SHOWN], "customers_total": len(customers),
            "more": max(0, len(customers) - LIST_SHOWN), "chats": chats,
            "takeovers": service.takeover_choices(p, handover), "distributions": DISTRIBUTION_LABELS,
            "notice_default": service.NOTICE_DEFAULT, "notice_max": service.NOTICE_MAX}


# ---------------------------------------------------------------- a job


@bp.get("/<id:job_id>")
@require_role(*ROLES)
def detail(job_id: int) -> Any:
    p = principal()
    job = service.get_job(p, job_id)
    status = request.args.get("status") or ""
    if status not in (*CUSTOMER_STATUSES, "problem"):
        status = ""
    after = max(0, request.args.get("after", type=int) or 0)
    rows, next_after = service.customers_page(job, status=status or None, after=after, limit=PAGE_SIZE)
    chats, _ = service.chats_page(job, limit=500)
    info = service.detail(job)
    problems = sum(info["counts"]["customers"].get(s, 0) for s in RETRYABLE_CUSTOMER)
    chat_problems = sum(info["counts"]["chats"].get(s, 0) for s in RETRYABLE_CHAT)
    return render_template("handover/detail.html", job=job, j=info, rows=rows, next_after=next_after, status=status,
                           after=after, chats=chats, tabs=CUSTOMER_TABS, problems=problems,
                           chat_problems=chat_problems, next_takeover=service.waiting_now(job),
                           takeovers=service.takeover_choices(p, job.handover_userid) if problems or chat_problems
                           else [], waiting=info["counts"]["customers"].get(C_WAITING, 0),
                           running=job.status == RUNNING)


@bp.get("/<id:job_id>/progress")
@require_role(*ROLES)
def progress(job_id: int) -> Any:
    """Status and progress for the job page to follow while it runs (JSON)."""
    info = service.job_dict(service.get_job(principal(), job_id))
    return jsonify(status=info["status"], status_label=info["status_label"], progress=info["progress"],
                   customers=info["counts"]["customers"], chats=info["counts"]["chats"])


@bp.post("/<id:job_id>/retry")
@require_role(*ROLES)
def retry(job_id: int) -> Any:
    p = principal()
    job = service.get_job(p, job_id)
    body: dict[str, Any] = {}
    picked = [e for e in request.form.getlist("customer") if e]
    if picked:
        body["external_userids"] = picked
    if request.form.get("mode") == "reassign":
        body["takeover_userids"] = [u for u in request.form.getlist("takeover") if u]
        if not body["takeover_userids"]:
            flash("请选择改派给哪位成员", "error")
            return redirect(url_for(".detail", job_id=job_id))
        body["distribution"] = request.form.get("distribution") or job.distribution
    try:
        service.retry(p, job, body)
    except ScrmError as exc:
        mark_failed()
        flash(exc.message, "error")
    else:
        flash("已重新提交未成功的客户和客户群" if "takeover_userids" not in body else "已改派给新的接替成员", "ok")
    return redirect(url_for(".detail", job_id=job_id))


@bp.get("/<id:job_id>/export.csv")
@require_role(*ROLES)
def export(job_id: int) -> Any:
    p = principal()
    job = service.get_job(p, job_id)
    audit(p.corp_id, p.actor, "handover.export", "handover_job", str(job.id), {})
    response = Response(stream_with_context(service.export_csv(job)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename={service.export_filename(job)}"
    return response


@bp.app_template_global("handover_reason")
def reason(key: str | None, errcode: int | None = None) -> str:
    return describe(key, errcode)
