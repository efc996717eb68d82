"""Fixtures for the channel tests: a small corp in the emulator and the local database (built as the
campaign tests build theirs), a marketer's API token, and helpers to deliver a callback and run the worker."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.campaigns.conftest import Corp, Person, build, send_all
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import token
from wecom.crypto import parse_xml
from wecom.emulator.callbacks import event_xml
from wecom.service import store_event

UTC = dt.timezone.utc
CONTACT = "change_external_contact"

__all__ = ["Corp", "send_all", "deliver_add", "CONTACT"]


@pytest.fixture()
def corp(db_session: Any, emu: Any) -> Corp:
    """Staff zhangsan, lisi, xiaomei (marketer); tag group 意向 with 展会客户 and 高意向; one old customer
    of zhangsan's (客户0)."""
    base = int(dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    return build(db_session, emu, [("zhangsan", "张三"), ("lisi", "李四"), ("xiaomei", "小美")],
                 {"意向": ["展会客户", "高意向"]}, [Person("客户0", [("zhangsan", [], base)])])


@pytest.fixture()
def marketer(db_session: Any) -> dict[str, str]:
    return token(db_session, "marketer", "xiaomei", name="marketer")


def deliver_add(emu: Any, userid: str, name: str, state: str) -> str:
    """A customer adds `userid` through the code with `state`: the emulator's action, then the callback
    stored in the inbox exactly as /wecom/callback would store it; the customer's external_userid."""
    ext = emu.act.customer_adds_staff(userid, name=name, state=state)
    code = next(c for c, v in emu.state.welcome_codes.items() if v["external_userid"] == ext)
    plaintext = event_xml(TEST_CORP_ID, int(time.time()), CONTACT, "add_external_contact",
                          [("UserID", userid), ("ExternalUserID", ext), ("State", state), ("WelcomeCode", code)])
    store_event(TEST_CORP_ID, plaintext, parse_xml(plaintext))
    return ext
