"""Browser-test helpers: a console session for a member with a role, set as the signed cookie."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from tests.helpers import TEST_CORP_ID, start_session


@pytest.fixture()
def sign_in_browser(page: Any, live_server: Any, app: Any, db_session: Any) -> Callable[[str, str], None]:
    """`sign_in_browser(userid, role)`: grant the role and give the browser that member's session."""
    from identity.service import set_role

    def sign_in(userid: str, role: str) -> None:
        set_role(TEST_CORP_ID, userid, role, granted_by="test")
        db_session.commit()
        cookie = app.session_interface.get_signing_serializer(app).dumps(
            {"sid": start_session(userid), "corp": TEST_CORP_ID, "csrf": "t"})
        page.context.add_cookies([{"name": app.config.get("SESSION_COOKIE_NAME", "session"), "value": cookie,
                                   "url": live_server.url}])
    return sign_in


@pytest.fixture()
def page_errors(page: Any) -> list[str]:
    """Script errors, CSP violations and failed requests the page reports (expected to stay empty)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors
