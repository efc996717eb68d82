"""The console shell's own pages: sign-in, sign-out, the overview and roles."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from crm.models import Customer, FollowRelation, Staff
from crm.service import ROLES, UserValueError
from extensions import db

from .identity import (check_csrf, current_principal, login_required, logout_session, require_role, safe_next,
                       scope_for, set_role)
from .models import StaffRole

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

ROLE_LABELS = {"admin": "管理员", "manager": "主管", "marketer": "营销", "staff": "员工"}


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
    logout_session()
    return redirect(url_for("console.login"))


@bp.get("/")
@login_required("console")
def home() -> Any:
    principal = current_principal()
    assert principal is not None
    scope = scope_for(principal)
    relations = select(func.count()).select_from(FollowRelation).where(
        FollowRelation.corp_id == principal.corp_id, FollowRelation.status == "active")
    if not scope.all:
        relations = relations.where(FollowRelation.userid.in_(sorted(scope.userids)))
    figures = {
        "relations": db.session.scalar(relations) or 0,
        "customers": db.session.scalar(select(func.count()).select_from(Customer)
                                       .where(Customer.corp_id == principal.corp_id)) if scope.all else None,
    }
    return render_template("console/home.html", figures=figures, scope=scope)


@bp.route("/roles", methods=["GET", "POST"])
@require_role("admin")
def roles() -> Any:
    principal = current_principal()
    assert principal is not None
    if request.method == "POST":
        try:
            set_role(principal.corp_id, request.form.get("userid", ""), request.form.get("role", ""),
                     granted_by=principal.actor)
        except UserValueError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash("已保存", "ok")
        return redirect(url_for("console.roles"))
    staff = db.session.scalars(select(Staff).where(Staff.corp_id == principal.corp_id)
                               .order_by(Staff.status, Staff.userid)).all()
    granted = {u: r for u, r in db.session.execute(select(StaffRole.userid, StaffRole.role)
                                                   .where(StaffRole.corp_id == principal.corp_id))}
    return render_template("console/roles.html", staff=staff, granted=granted, roles=ROLES)


@bp.app_errorhandler(403)
def forbidden(exc: Any) -> Any:
    if request.path.startswith("/api/"):
        return {"error": {"code": "forbidden", "message": "无权访问"}}, 403
    return render_template("console/error.html", code=403, title="无权访问",
                           message="您的账号没有权限查看此页面。如需开通，请联系管理员。"), 403
