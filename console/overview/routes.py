"""The overview page (the console's home, `console.home`) and the CSV download of each chart's data."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import quote

from flask import Response, abort, flash, redirect, render_template, request, url_for

from core.errors import UserValueError
from identity.service import Principal
from identity.web import login_required, principal

from ..labels import channel_names
from ..routes import bp
from . import service
from .refresh import china_today

PRESETS = (("近7天", 7), ("近30天", 30), ("近90天", 90), ("近一年", 365))
GROWTH_COLORS = {"added": "#07c160", "lost": "#e5484d", "net": "#1a6fd6"}
STAFF_CHART_ROWS = 12
CAMPAIGN_CHART_ROWS = 12
# Campaign results, stacked: delivered, on its way, then each reason it was not delivered.
DELIVERY_COLORS = {"delivered": "#07c160", "planned": "#91caff", "unsent": "#fa8c16", "not_friend": "#e5484d",
                   "quota": "#722ed1", "failed": "#8c8c8c", "cancelled": "#c9cdd4"}
HANDOVER_COLORS = {"done": "#07c160", "waiting": "#1a6fd6", "queued": "#91caff", "refused": "#e5484d",
                   "limit": "#fa8c16", "no_record": "#722ed1", "failed": "#8c8c8c", "excluded": "#c9cdd4"}


def _filters(p: Principal) -> service.Filters:
    args = request.args
    return service.filters_for(p, args.get("from"), args.get("to"), args.get("department"), args.get("channel"))


def _presets(f: service.Filters) -> list[dict[str, Any]]:
    today = china_today()
    out = []
    for label, days in PRESETS:
        first = today - dt.timedelta(days=days - 1)
        out.append({"label": label, "from": first.isoformat(), "to": today.isoformat(),
                    "on": f.period.first == first and f.period.last == today})
    month = today.replace(day=1)
    out.append({"label": "本月", "from": month.isoformat(), "to": today.isoformat(),
                "on": f.period.first == month and f.period.last == today})
    return out


def _charts(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Chart.js specs for the page's canvases (drawn by `static/charts.js`)."""
    points = data["growth"]["points"]
    datasets: list[dict[str, Any]] = [
        {"label": "新增", "values": [p["added"] for p in points], "color": GROWTH_COLORS["added"]},
        {"label": "流失", "values": [p["lost"] for p in points], "color": GROWTH_COLORS["lost"]},
        {"label": "净增", "values": [p["net"] for p in points], "color": GROWTH_COLORS["net"], "type": "line"}]
    growth = {"labels": [p["label"] for p in points], "legend": True, "datasets": datasets}
    if len(points) > 45:  # a thin line reads better than a hundred bars
        for dataset in datasets:
            dataset["type"] = "line"
    active = sorted(data["staff"], key=lambda r: (-r["added"], r["lost"], r["name"]))[:STAFF_CHART_ROWS]
    staff = {"labels": [r["name"] for r in active], "horizontal": True, "legend": True, "datasets": [
        {"label": "新增", "values": [r["added"] for r in active], "color": GROWTH_COLORS["added"]},
        {"label": "流失", "values": [r["lost"] for r in active], "color": GROWTH_COLORS["lost"]}]}
    writers = sorted(data["staff"], key=lambda r: (-r["followups"], r["name"]))[:STAFF_CHART_ROWS]
    notes = {"labels": [r["name"] for r in writers], "horizontal": True, "label": "跟进次数",
             "values": [r["followups"] for r in writers]}
    tags = [{"id": f"chart-tags-{i}", "title": g["name"], "total": sum(t["customers"] for t in g["tags"]),
             "spec": {"labels": [t["name"] for t in g["tags"]], "values": [t["customers"] for t in g["tags"]],
                      "label": "客户数", "horizontal": True}}
            for i, g in enumerate(data["tags"]) if g["tags"]]
    steps = data["funnel"]["steps"]
    funnel = {"labels": [s["stage"] for s in steps], "horizontal": True, "legend": True, "datasets": [
        {"label": "到达该阶段及以后", "values": [s["reached"] for s in steps], "color": "#07c160"},
        {"label": "当前处于该阶段", "values": [s["current"] for s in steps], "color": "#95de64"}]}
    return {"growth": growth, "staff": staff, "notes": notes, "tags": tags, "funnel": funnel,
            "campaigns": _campaign_chart(data["campaigns"]["campaigns"]), **_handover_charts(data["handover"])}


def _campaign_chart(campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    """Per campaign (the latest first), its recipients stacked by result, the delivery rate by its name."""
    shown = campaigns[:CAMPAIGN_CHART_ROWS]
    used = [k for k in DELIVERY_COLORS if any(c[k] for c in shown)] or ["delivered"]
    return {"labels": [[c["name"], "送达率 —" if c["rate"] is None else f"送达率 {c['rate']}%"] for c in shown],
            "horizontal": True, "stacked": True, "legend": True,
            "datasets": [{"label": service.DELIVERY_LABELS[k], "values": [c[k] for c in shown],
                          "color": DELIVERY_COLORS[k]} for k in used]}


def _handover_charts(data: dict[str, Any]) -> dict[str, Any]:
    """The customers by outcome (one bar each), and per takeover colleague stacked by outcome."""
    outcomes = [o for o in data["outcomes"] if o["customers"] or o["status"] == "done"]
    overall = {"labels": [o["label"] for o in outcomes], "horizontal": True, "label": "客户数",
               "values": [o["customers"] for o in outcomes], "colors": [HANDOVER_COLORS[o["status"]] for o in outcomes]}
    shown = data["takeovers"][:STAFF_CHART_ROWS]
    per = {"labels": [t["name"] for t in shown], "horizontal": True, "stacked": True, "legend": True,
           "datasets": [{"label": o["label"], "values": [t[o["status"]] for t in shown],
                         "color": HANDOVER_COLORS[o["status"]]} for o in outcomes if any(t[o["status"]] for t in shown)]}
    return {"handover": overall, "takeovers": per}


@bp.get("/")
@login_required("console")
def home() -> Any:
    """The overview: headline figures, growth and loss, staff, tags, the stage funnel, campaign delivery
    and handover outcomes, with filters."""
    p = principal()
    try:
        f = _filters(p)
    except UserValueError as exc:
        flash(f"筛选条件有误：{exc}", "error")
        return redirect(url_for("console.home"))
    data = service.overview(f)
    names = channel_names(p.corp_id)
    return render_template("console/overview.html", data=data, f=f, charts=_charts(data, names),
                           presets=_presets(f), departments=service.departments(p) if p.role != "staff" else [],
                           channels=[(s, names.get(s) or s or service.NO_CHANNEL_LABEL)
                                     for s in service.channel_options(f)],
                           channel_label=(names.get(f.channel) or f.channel or service.NO_CHANNEL_LABEL)
                           if f.channel is not None else None,
                           no_channel=service.NO_CHANNEL, sections=service.SECTIONS, args=request.args,
                           delivery_labels=service.DELIVERY_LABELS)


@bp.get("/overview/<section>.csv")
@login_required("console")
def overview_csv(section: str) -> Any:
    """One chart's data as a CSV file (UTF-8 with a BOM, so that Excel reads the Chinese)."""
    if section not in {s.id for s in service.SECTIONS}:
        abort(404)
    f = _filters(principal())
    rows = service.section_rows(section, service.overview(f, only=section))
    out = io.StringIO()
    out.write("\ufeff")
    csv.writer(out).writerows(rows)
    title = next(s.title for s in service.SECTIONS if s.id == section)
    filename = f"概览-{title}-{f.period.first.isoformat()}至{f.period.last.isoformat()}.csv"
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=overview-{section}.csv; filename*=UTF-8''{quote(filename)}"})
