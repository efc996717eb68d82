"""Fixtures for the handover tests: a corp built straight into the emulator and the local database (the
campaign tests' `build`), the emulator's callbacks delivered to a live server, a worker run to the end, and
API tokens."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from core.models import Task
from tests.campaigns.conftest import Corp, Person, build, send_all
from tests.tagging.conftest import token
from wecom.models import InboxEvent, OutboxCommand

UTC = dt.timezone.utc
BASE = int(dt.datetime(2026, 6, 1, tzinfo=UTC).timestamp())
STAFF = [("laowang", "老王"), ("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"), ("xiaomei", "小美")]
RESIGNED_TRANSFER = "/cgi-bin/externalcontact/resigned/transfer_customer"
ONJOB_TRANSFER = "/cgi-bin/externalcontact/transfer_customer"
CHAT_TRANSFER = "/cgi-bin/externalcontact/groupchat/transfer"
RESULT_PATHS = ("/cgi-bin/externalcontact/resigned/transfer_result", "/cgi-bin/externalcontact/transfer_result")


class Killed(BaseException):
    """The worker process dies (kill -9) right after WeCom answered, before our commit."""


@pytest.fixture()
def wired(emu: Any, live_server: Any) -> Any:
    """The emulator delivers its callbacks (signed and encrypted) to the app over HTTP."""
    emu.callback_url = live_server.url + "/wecom/callback"
    return emu


def settle(app: Any, db_session: Any, emu: Any, timeout: float = 60.0) -> None:
    """Every callback delivered and applied, every task run, every command sent: the worker to the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert emu.wait_idle(timeout)
        send_all(app)
        db_session.rollback()
        busy = sum(int(db_session.scalar(select(func.count()).select_from(m).where(m.status == "pending")) or 0)
                   for m in (InboxEvent, Task, OutboxCommand))
        if not busy:
            return
        time.sleep(0.05)
    raise AssertionError("the worker did not settle")


def people(n: int, owner: str, tags: list[str] | None = None, others: dict[int, str] | None = None) -> list[Person]:
    """n customers of `owner` (tagged `tags`), the i-th also followed by others[i]."""
    out = []
    for i in range(n):
        follows = [(owner, list(tags or []), BASE + i)]
        if others and i in others:
            follows.append((others[i], [], BASE + i + 1))
        out.append(Person(f"客户{i:04d}", follows))
    return out


def corp_of(db_session: Any, emu: Any, persons: list[Person], *, resigned: tuple[str, ...] = ()) -> Corp:
    return build(db_session, emu, STAFF, {"客户等级": ["VIP", "普通"]}, persons, resigned=resigned)


@pytest.fixture()
def admin(db_session: Any) -> dict[str, str]:
    return token(db_session, "admin", "zhangsan", name="ops")
