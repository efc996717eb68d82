"""The stages and value tiers page (admins): the ordered stages, the WeCom mirror, tier thresholds."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from core.errors import UserValueError
from core.uow import mark_failed
from crm.models import is_provisional
from identity.web import principal, require_role

from . import stages, tiers

bp = Blueprint("lifecycle", __name__, url_prefix="/console", template_folder="templates")


def _int(value: str | None, label: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UserValueError(f"{label}应为整数") from None
    if not 1 <= number <= 10**9:
        raise UserValueError(f"{label}应在 1 到 1000000000 之间")
    return number


@bp.route("/stages", methods=["GET", "POST"])
@require_role("admin")
def stages_page() -> Any:
    p = principal()
    corp_id = p.corp_id
    if request.method == "POST":
        try:
            if request.form.get("action") == "tiers":
                tiers.save_thresholds(corp_id, {k: _int(request.form.get(k), k) for k in tiers.DEFAULT_THRESHOLDS
                                                if request.form.get(k)}, p.actor)
            elif request.form.get("action") == "compute":
                stats = tiers.compute_tiers(corp_id, actor=p.actor)
                flash(f"已重新计算客户价值分层：{stats['changed']} 位客户的分层有变化", "ok")
            else:
                lines = {k: [n.strip() for n in request.form.get(k, "").splitlines() if n.strip()]
                         for k in ("stages", "lost_stages")}
                stages.save_stages(corp_id, [{"name": n, "is_lost": False} for n in lines["stages"]]
                                   + [{"name": n, "is_lost": True} for n in lines["lost_stages"]], p.actor,
                                   mirror=request.form.get("mirror") == "on")
        except UserValueError as exc:
            mark_failed()
            flash(str(exc), "error")
        else:
            if request.form.get("action") != "compute":
                flash("已保存", "ok")
        return redirect(url_for(".stages_page"))
    mirror_tags = stages.mirror_tags(corp_id)
    return render_template("tagging/stages.html", stages=stages.list_stages(corp_id),
                           mirror=stages.mirror_enabled(corp_id), mirror_group=stages.MIRROR_GROUP,
                           mirror_tags=mirror_tags, mirror_creating=[n for n, t in mirror_tags.items()
                                                                     if is_provisional(t.tag_id)],
                           tier_counts=tiers.tier_counts(corp_id),
                           thresholds=tiers.thresholds(corp_id), tier_group=tiers.TIER_GROUP)
