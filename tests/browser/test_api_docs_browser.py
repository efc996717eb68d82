"""The API reference at /api/v1/docs renders the document in a real browser, offline (vendored Swagger UI),
under its Content-Security-Policy."""

from __future__ import annotations

import os
from typing import Any

SHOTS = os.path.join(os.path.dirname(__file__), "..", "screenshots")


def test_the_docs_page_renders_every_operation(page: Any, live_server: Any, page_errors: list[str]) -> None:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url)
            and not r.url.startswith("data:") else None)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/api/v1/docs")
    page.locator(".opblock").first.wait_for(timeout=15000)
    count = page.locator(".opblock").count()
    spec = page.request.get(live_server.url + "/api/v1/openapi.json").json()
    operations = sum(1 for methods in spec["paths"].values() for m in methods if m != "parameters")
    assert count == operations > 20
    assert page.locator(".info .title").inner_text().startswith("企微 SCRM API")
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, "api-docs.png"), full_page=False)
    assert outside == [], outside  # nothing fetched from a CDN
    assert not page_errors, page_errors
