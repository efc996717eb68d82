"""The console shell's own pages: sign-in, sign-out and roles. The blueprint `console` also carries the
pages of `customers/` and `overview/` (the overview is the console's home, `console.home`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from core.db import db
from core.errors import UserValueError
from core.uow import mark_failed
from crm.models import Staff
from identity.models import StaffRole
from identity.service import ROLE_LABELS, ROLES, set_role
from identity.web import check_csrf, current_principal, principal, require_role, safe_next, sign_out

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

@bp.app_template_filter("role_label")
def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


@bp.get("/login")
def login() -> Any:
    """The desktop sign-in page: WeCom's web login (QR code)."""
    next_path = safe_next(request.args.get("next"), url_for("console.home"))
    if current_principal() is not None:
        return redirect(next_path)
    return render_template("console/login.html", next_path=next_path)


@bp.post("/logout")
def logout() -> Any:
    if not check_csrf():
        abort(403)
    sign_out()
    return redirect(url_for("console.login"))


@bp.route("/roles", methods=["GET", "POST"])
@require_role("admin")
def roles() -> Any:
    p = principal()
    if request.method == "POST":
        try:
            set_role(p.corp_id, request.form.get("userid", ""), request.form.get("role", ""), granted_by=p.actor)
        except UserValueError as exc:
            mark_failed()
            flash(str(exc), "error")
        else:
            flash("已保存", "ok")
        return redirect(url_for("console.roles"))
    staff = db.session.scalars(select(Staff).where(Staff.corp_id == p.corp_id)
                               .order_by(Staff.status, Staff.userid)).all()
    granted = {u: r for u, r in db.session.execute(select(StaffRole.userid, StaffRole.role)
                                                   .where(StaffRole.corp_id == p.corp_id))}
    return render_template("console/roles.html", staff=staff, granted=granted, roles=ROLES)
