"""The drift page: differences between the local tags and WeCom's, and a button to heal them (admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from core.uow import mark_failed
from identity.web import principal, require_role
from wecom.client import WeComError, contact_client

from .service import latest_report, run_report

bp = Blueprint("tag_drift", __name__, url_prefix="/console/tags", template_folder="templates")


@bp.route("/drift", methods=["GET", "POST"])
@require_role("admin")
def drift() -> Any:
    p = principal()
    if request.method == "POST":
        try:
            run_report(p.corp_id, contact_client(), do_heal=request.form.get("heal") == "1")
        except WeComError as exc:
            mark_failed()
            flash(f"无法读取企业微信（错误码 {exc.errcode}），请稍后再试", "error")
        return redirect(url_for(".drift"))
    return render_template("tagging/tag_drift.html", report=latest_report(p.corp_id))
