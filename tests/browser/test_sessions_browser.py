"""Signing out in a real browser ends the session on the server: the old cookie, put back, is refused."""

from __future__ import annotations

import os
from typing import Any

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")


def test_sign_out_then_replay_the_old_cookie_is_refused(page: Any, live_server: Any, sign_in_browser: Any,
                                                        page_errors: list[str]) -> None:
    sign_in_browser("boss", "admin")
    page.goto(live_server.url + "/console/")
    assert page.locator(".who .user").inner_text() == "boss"
    old = next(c for c in page.context.cookies() if c["name"] == "session")
    page.get_by_role("button", name="退出").click()
    page.wait_for_url("**/console/login**")
    page.context.add_cookies([{"name": "session", "value": old["value"], "url": live_server.url}])
    page.goto(live_server.url + "/console/")
    assert "/console/login" in page.url  # the replayed cookie signs nobody in
    api = page.request.get(live_server.url + "/api/v1/tags")
    assert api.status == 401 and api.json()["error"]["code"] == "unauthorized"
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, "console-login-after-sign-out.png"), full_page=True)
    assert not [e for e in page_errors if "401" not in e], page_errors
