"""Every console page renders for the roles that may see it, and refuses the others.

A smoke test over the whole console: a page that raises (a view shadowing a module it uses, a
template naming a missing endpoint) fails here even when no feature test opens it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import TEST_CORP_ID, sign_in

PAGES = {
    # path: roles that may open it
    "/console/": ("admin", "manager", "marketer", "staff"),
    "/console/customers": ("admin", "manager", "marketer", "staff"),  # each sees the customers of their scope
    "/console/roles": ("admin",),
    "/console/segments": ("admin", "manager", "marketer"),  # a manager segments their department's customers
    "/console/segments/new": ("admin", "manager", "marketer"),
    "/console/stages": ("admin",),
    "/console/tags/": ("admin", "marketer"),
    "/console/tags/bulk": ("admin", "manager", "marketer"),
    "/console/tags/drift": ("admin",),
    "/console/rules/": ("admin", "marketer"),
}


def _sign_in(client: Any, userid: str) -> None:
    sign_in(client, userid)


@pytest.fixture()
def staff(db_session: Any) -> dict[str, str]:
    from identity.service import set_role
    from crm.models import Staff

    people = {"admin": "laowang", "manager": "lisi", "marketer": "xiaomei", "staff": "zhangsan"}
    for role, userid in people.items():
        db_session.add(Staff(corp_id=TEST_CORP_ID, userid=userid, name=userid, department_ids=[1]))
        if role != "staff":
            set_role(TEST_CORP_ID, userid, role, "test")
    db_session.commit()
    return people


@pytest.mark.parametrize("path", sorted(PAGES))
def test_console_page_renders_for_its_roles_and_refuses_the_others(client: Any, staff: dict[str, str],
                                                                   path: str) -> None:
    for role, userid in staff.items():
        _sign_in(client, userid)
        response = client.get(path)
        if role in PAGES[path]:
            assert response.status_code == 200, (role, path, response.get_data(as_text=True)[:300])
            assert "text/html" in response.content_type and "<html" in response.get_data(as_text=True)
        else:
            assert response.status_code in (403, 404), (role, path, response.status_code)


def test_console_pages_need_a_sign_in(client: Any) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code in (302, 401), path


def test_every_navigation_entry_leads_to_a_page(app: Any, client: Any, staff: dict[str, str]) -> None:
    """The console hides entries whose endpoint does not exist; a typo would hide a page silently."""
    from console import NAV

    assert {endpoint for endpoint, _, _ in NAV} - set(app.view_functions) == set()
    _sign_in(client, staff["admin"])
    home = client.get("/console/").get_data(as_text=True)
    for label in ("客户", "客户分群", "标签管理", "自动打标签", "阶段与分层", "角色与权限"):
        assert label in home, label
