"""In Debian's Chromium: the sidebar's 来源 and the segment builder show the channel's name, the channel
report draws its chart, and a forged tracked link shows its Chinese page on a phone without script
errors. Screenshots under tests/screenshots/."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import pytest
from sqlalchemy import update

from crm.models import FollowRelation
from crm.service import save_state_label
from tests.browser.conftest import page_errors, sign_in_browser  # noqa: F401  (fixtures)
from tests.browser.test_sidebar_browser import DOUBLE, SDK_PATH
from tests.channels.conftest import Corp
from tests.helpers import TEST_CORP_ID

pytestmark = pytest.mark.browser

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")


def _shot(page: Any, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def test_channel_names_in_the_sidebar_and_the_segment_builder(page: Any, live_server: Any, db_session: Any,
                                                             corp: Corp, page_errors: list[str],  # noqa: F811
                                                             sign_in_browser: Callable[[str, str], None]) -> None:  # noqa: F811
    db_session.execute(update(FollowRelation).values(state="zhanhui2026"))
    save_state_label(TEST_CORP_ID, "zhanhui2026", "2026 上海车展")
    db_session.commit()
    ext = corp.ext(0)

    sign_in_browser("zhangsan", "staff")
    body = DOUBLE % {"entry": json.dumps("single_chat_tools"), "user": json.dumps(ext), "chat": json.dumps("")}
    page.route(SDK_PATH, lambda route: route.fulfill(status=200, content_type="text/javascript", body=body))
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server.url}/sidebar/customer/{ext}")
    assert page.inner_text("#channel").strip() == "2026 上海车展"
    _shot(page, "channels-sidebar-source.png")

    sign_in_browser("xiaomei", "marketer")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/console/segments/new")
    chip = page.locator("label.chip", has=page.locator("input[name=state][value=zhanhui2026]"))
    assert chip.inner_text().strip() == "2026 上海车展"
    _shot(page, "channels-segment-builder.png")

    page.goto(f"{live_server.url}/console/channels/report?from=2025-12-01&to=2026-01-31")
    page.wait_for_selector("canvas#chart-channels")
    assert "2026 上海车展" in page.inner_text("table.report")
    _shot(page, "channels-report.png")
    assert page_errors == []


def test_a_forged_link_page_on_a_phone(page: Any, live_server: Any, db_session: Any,
                                       page_errors: list[str]) -> None:  # noqa: F811
    page.set_viewport_size({"width": 390, "height": 800})
    response = page.goto(f"{live_server.url}/l/forged.token")
    assert response is not None and response.status == 404
    assert "链接无效" in page.inner_text("h1")
    _shot(page, "channels-link-invalid.png")
    # the only errors: the page's own 404 (as the browser reports it), no script or CSP error, no missing style
    assert [e for e in page_errors if "/l/forged.token" not in e and "status of 404" not in e] == []
    assert page.evaluate("getComputedStyle(document.querySelector('.link-page')).textAlign") == "center"
