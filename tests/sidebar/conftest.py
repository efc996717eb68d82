"""Fixtures for the sidebar, sign-in and customer API tests: the emulator as WeCom, a small synced corp.

`emu` starts the WeCom emulator and points the running app (API and OAuth bases) at it;
`corp` seeds staff, tags, customers and a group chat in the emulator and runs the real full sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.helpers import TEST_CORP_ID, run_tasks

XSS_NAME = "<img src=x onerror=alert(1)>"


@dataclass
class Corp:
    """What `corp` made: external_userids by nickname, tag ids by name, the group chat id."""

    customers: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    chat_id: str = ""


@pytest.fixture()
def corp(emu: Any, db_session: Any) -> Corp:
    """zhangsan, lisi (dept 1, manager laowang) and wangwu (dept 2); customers:
    xss (zhangsan), shared (zhangsan + lisi), other (wangwu only), lisi_only (lisi)."""
    from crm.models import Staff
    from crm.sync import FullSync
    from wecom.client import contact_client

    made = Corp()
    for userid, name, dept in (("zhangsan", "张三", 1), ("lisi", "李四", 1), ("wangwu", "王五", 2),
                               ("laowang", "老王", 1), ("admin1", "管理员", 3)):
        emu.act.add_staff(userid, name, department=[dept])
    group_id, tag_ids = emu.act.corp_tag_group_created("客户等级", ["A类", "B类", "C类"])
    made.tags = dict(zip(["A类", "B类", "C类"], tag_ids))
    _, (edu,) = emu.act.corp_tag_group_created("行业", ["教育"])
    made.tags["教育"] = edu
    made.customers["xss"] = emu.act.customer_adds_staff("zhangsan", name=XSS_NAME, state="expo2026")
    made.customers["shared"] = emu.act.customer_adds_staff("zhangsan", name="陈晓明")
    emu.act.customer_adds_staff("lisi", name="陈晓明", external_userid=made.customers["shared"])
    made.customers["other"] = emu.act.customer_adds_staff("wangwu", name="赵敏")
    emu.clock.advance(60)  # lisi's newest customer, for the demo link's default
    made.customers["lisi_only"] = emu.act.customer_adds_staff("lisi", name="周杰")
    emu.act.staff_edits_tags("lisi", made.customers["shared"], add=[made.tags["B类"]])
    made.chat_id = emu.act.group_chat_created("zhangsan", [made.customers["xss"], made.customers["shared"], "lisi"],
                                              "华东客户群")
    FullSync(contact_client(), TEST_CORP_ID).run()
    run_tasks()  # the members' names and departments, read after the sync
    # The manager relation is ours (WeCom's user/get may not carry it): laowang manages lisi.
    for staff in db_session.query(Staff).filter(Staff.userid == "lisi"):
        staff.manager_userid = "laowang"
    db_session.commit()
    return made


def oauth_sign_in(client: Any, emu: Any, userid: str, next_path: str = "/sidebar/", mode: str = "oauth") -> Any:
    """Walk the real OAuth redirect: our start page → the emulator's authorize page → our callback."""
    start = client.get("/auth/wecom/start", query_string={"mode": mode, "next": next_path})
    assert start.status_code == 302
    location = start.headers["Location"]
    assert location.startswith(emu.url)
    answer = requests.get(location.split("#")[0], params={"userid": userid}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return client.get(back.path, query_string={k: v[0] for k, v in parse_qs(back.query).items()})


def grant(db_session: Any, userid: str, role: str) -> None:
    from identity.service import set_role

    set_role(TEST_CORP_ID, userid, role, granted_by="test")
    db_session.commit()


def make_token(db_session: Any, role: str, userid: str | None = None) -> str:
    from identity.service import create_api_token
    from crm.service import ensure_corp

    ensure_corp(TEST_CORP_ID)
    _, secret = create_api_token(TEST_CORP_ID, f"test-{role}", role, userid)
    db_session.commit()
    return secret
