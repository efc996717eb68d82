"""Console errors are Chinese pages in the console's style, with a way back; never Werkzeug's English."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import visible_text
from tests.helpers import sign_in


def test_404_403_and_500_pages(app: Any, client: Any, db_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import console.overview.routes

    sign_in(client, "zhangsan")
    missing = client.get("/console/no-such-page")
    text = visible_text(missing.get_data(as_text=True))
    assert missing.status_code == 404 and "页面不存在" in text and "返回控制台首页" in text
    assert "Not Found" not in text and "requested URL" not in text
    refused = client.get("/console/roles")
    assert refused.status_code == 403 and "无权访问" in visible_text(refused.get_data(as_text=True))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(console.overview.routes.service, "overview", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as in production: the crash page
    crashed = client.get("/console/")
    text = visible_text(crashed.get_data(as_text=True))
    assert crashed.status_code == 500 and "服务器出错了" in text and "错误编号" in text and "boom" not in text


def test_a_visitor_not_signed_in_is_offered_the_sign_in(client: Any, db_session: Any) -> None:
    text = visible_text(client.get("/console/definitely-missing").get_data(as_text=True))
    assert "页面不存在" in text and "登录控制台" in text
