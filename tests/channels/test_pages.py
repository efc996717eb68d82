"""The console pages: list, create through the form, detail with its QR code, pause and retire, the
report with its chart data and CSV; who may open them."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.channels.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID, sign_in


def _as(client: Any, db_session: Any, userid: str, role: str | None) -> str:
    from identity.service import set_role

    if role:
        set_role(TEST_CORP_ID, userid, role, "test")
        db_session.commit()
    sign_in(client, userid, csrf="t")
    return "t"


def test_a_marketer_creates_a_channel_in_the_console(app: Any, client: Any, db_session: Any, emu: Any,
                                                     corp: Corp) -> None:
    csrf = _as(client, db_session, "xiaomei", "marketer")
    assert client.get("/console/channels/").status_code == 200
    form = client.get("/console/channels/new")
    assert form.status_code == 200 and "接待成员" in form.get_data(as_text=True)
    bad = client.post("/console/channels/new", data={"csrf_token": csrf, "name": "展会"})
    assert bad.status_code == 422 and "请选择接待成员" in bad.get_data(as_text=True)
    made = client.post("/console/channels/new", data={"csrf_token": csrf, "name": "展会", "users": ["zhangsan"],
                                                      "skip_verify": "1", "welcome_text": "欢迎", "cost": "300",
                                                      "tag_ids": [corp.tags["高意向"]]})
    assert made.status_code == 302, made.get_data(as_text=True)[:500]
    send_all(app)
    detail = client.get(made.headers["Location"])
    html = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "下载二维码" in html and "使用中" in html
    assert "unsafe-inline" not in detail.headers["Content-Security-Policy"]
    paused = client.post(made.headers["Location"] + "/status", data={"csrf_token": csrf, "action": "paused"})
    assert paused.status_code == 302
    assert "已暂停" in client.get(made.headers["Location"]).get_data(as_text=True)
    client.post(made.headers["Location"] + "/status", data={"csrf_token": csrf, "action": "retire"})
    send_all(app)
    assert emu.state.contact_ways == {}

    report = client.get("/console/channels/report")
    assert report.status_code == 200
    csv = client.get("/console/channels/report.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"


def test_the_report_page_draws_a_chart_from_a_data_attribute(app: Any, client: Any, db_session: Any, corp: Corp,
                                                             marketer: dict[str, str]) -> None:
    from sqlalchemy import update

    from crm.models import FollowRelation

    db_session.execute(update(FollowRelation).values(state="web"))
    db_session.commit()
    _as(client, db_session, "xiaomei", "marketer")
    html = client.get("/console/channels/report?from=2025-12-01&to=2026-01-31").get_data(as_text=True)
    found = re.search(r'data-chart="([^"]+)"', html)
    assert found is not None
    spec = json.loads(found.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert spec["labels"] == ["web"] and spec["datasets"][0]["values"] == [1]


def test_staff_cannot_open_the_channel_pages(client: Any, db_session: Any, corp: Corp) -> None:
    _as(client, db_session, "zhangsan", None)
    assert client.get("/console/channels/").status_code == 403
    assert client.get("/console/channels/report").status_code == 403


def test_a_marketer_adds_a_tracked_link_in_the_console(client: Any, db_session: Any, corp: Corp) -> None:
    csrf = _as(client, db_session, "xiaomei", "marketer")
    assert "互动雷达" in client.get("/console/channels/").get_data(as_text=True)
    empty = client.get("/console/channels/links")
    assert empty.status_code == 200 and "还没有链接" in empty.get_data(as_text=True)
    bad = client.post("/console/channels/links", data={"csrf_token": csrf, "title": "价格表", "url": "ftp://x"})
    assert bad.status_code == 422 and "http:// 或 https://" in bad.get_data(as_text=True)
    made = client.post("/console/channels/links", data={"csrf_token": csrf, "title": "2026 价格表",
                                                        "url": "https://example.com/price"})
    assert made.status_code == 302
    page = client.get("/console/channels/links").get_data(as_text=True)
    assert "2026 价格表" in page and "https://example.com/price" in page and "小美" in page
