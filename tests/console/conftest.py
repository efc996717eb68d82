"""Fixtures of the console's tests.

- `corp`: a small customer base written straight into the tables (fast, exact times and channels);
- `demo_corp`: the demo corp: the WeCom emulator seeded with `seed="demo"` (20 staff, 3,000 customers),
  the real full sync, the demo's activity (`console.demo`), two customers who delete their salesperson
  through real callbacks, and the overview refreshed. Used by the browser tests "on the demo corp".
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from tests.helpers import TEST_CORP_ID, TEST_SETTINGS, run_tasks

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 4, 4, 0, tzinfo=UTC)  # 2026-12-04 12:00 in China


@dataclass
class Corp:
    """What `corp` made: customers by nickname (their external_userid), tag ids by name."""

    customers: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    relations: dict[str, int] = field(default_factory=dict)


def visible_text(page: str) -> str:
    """What a reader sees of an HTML page: no tags, attributes, scripts or styles."""
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"(?s)<[^>]+>", " ", page)))


def _at(days_ago: float, hour_utc: int = 4) -> dt.datetime:
    return (NOW - dt.timedelta(days=days_ago)).replace(hour=hour_utc)


@pytest.fixture()
def corp(db_session: Any) -> Corp:
    """Staff: zhangsan 张三 and lisi 李四 (dept 1, lisi's manager laowang 老王), wangwu 王五 (dept 2).
    Tags: 客户等级 A类/B类, 行业 教育. Customers (name, owners with channel and days since added):

        chen  陈晓明  zhangsan (expo, 3 d) + lisi (web, 1 d); A类 via zhangsan, 教育 via lisi; stage 意向客户
        zhou  周杰    lisi (expo, 10 d); A类; remark "周总 13800001111" (phone in remark_mobiles too)
        zhao  赵敏    wangwu ('', 40 d); B类; stage 成交客户
        lost  钱多多  zhangsan (expo, 20 d) lost 2 d ago (the customer deleted him)
        moved 孙悟空  lisi (web, 15 d) handed over 5 d ago (lost, transferred) + wangwu (web, 5 d)
    """
    from crm.models import Customer, FollowRelation, FollowUp, Staff, Tag, TagAssignment, TagGroup
    from identity.service import set_role

    made = Corp()
    for userid, name, dept, manager in (("zhangsan", "张三", 1, "laowang"), ("lisi", "李四", 1, "laowang"),
                                        ("wangwu", "王五", 2, None), ("laowang", "老王", 1, None)):
        db_session.add(Staff(corp_id=TEST_CORP_ID, userid=userid, name=name, department_ids=[dept],
                             manager_userid=manager))
    for userid, role in (("laowang", "manager"), ("boss", "admin"), ("xiaomei", "marketer")):
        set_role(TEST_CORP_ID, userid, role, "test")
    db_session.add(Staff(corp_id=TEST_CORP_ID, userid="xiaomei", name="小美", department_ids=[3]))
    level = TagGroup(corp_id=TEST_CORP_ID, group_id="etg-level", name="客户等级", order=2)
    trade = TagGroup(corp_id=TEST_CORP_ID, group_id="etg-trade", name="行业", order=1)
    db_session.add_all([level, trade])
    db_session.flush()
    tags = {}
    for name, group, order in (("A类", level, 2), ("B类", level, 1), ("教育", trade, 1)):
        tag = Tag(corp_id=TEST_CORP_ID, tag_id=f"et-{name}", group_pk=group.id, name=name, order=order)
        db_session.add(tag)
        tags[name] = tag
    db_session.flush()
    made.tags = {name: t.tag_id for name, t in tags.items()}

    def customer(key: str, name: str, stage: str | None = None, corp_name: str = "") -> Customer:
        c = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm-{key}", name=name, stage=stage, corp_name=corp_name,
                     type=2 if corp_name else 1)
        db_session.add(c)
        db_session.flush()
        made.customers[key] = c.external_userid
        return c

    def relation(c: Customer, userid: str, state: str, days: float, *, tags_: tuple[str, ...] = (),
                 lost_days: float | None = None, reason: str | None = None, remark: str = "",
                 mobiles: tuple[str, ...] = ()) -> FollowRelation:
        r = FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid=userid, state=state, added_at=_at(days),
                           remark=remark, remark_mobiles=list(mobiles), add_way=1,
                           status="lost" if lost_days is not None else "active",
                           lost_at=_at(lost_days) if lost_days is not None else None, lost_reason=reason)
        db_session.add(r)
        db_session.flush()
        for t in tags_:
            db_session.add(TagAssignment(corp_id=TEST_CORP_ID, relation_id=r.id, tag_pk=tags[t].id, customer_id=c.id))
        made.relations[f"{c.external_userid}:{userid}"] = r.id
        return r

    chen = customer("chen", "陈晓明", "意向客户", corp_name="华信科技")
    relation(chen, "zhangsan", "expo", 3, tags_=("A类",))
    relation(chen, "lisi", "web", 1, tags_=("教育",))
    zhou = customer("zhou", "周杰")
    relation(zhou, "lisi", "expo", 10, tags_=("A类",), remark="周总", mobiles=("13800001111",))
    zhao = customer("zhao", "赵敏", "成交客户")
    relation(zhao, "wangwu", "", 40, tags_=("B类",))
    lost = customer("lost", "钱多多")
    relation(lost, "zhangsan", "expo", 20, lost_days=2, reason="del_follow_user")
    moved = customer("moved", "孙悟空")
    relation(moved, "lisi", "web", 15, lost_days=5, reason="transferred")
    relation(moved, "wangwu", "web", 5)
    db_session.add_all([FollowUp(corp_id=TEST_CORP_ID, customer_id=chen.id, userid="zhangsan", content="电话沟通",
                                 created_at=_at(2)),
                        FollowUp(corp_id=TEST_CORP_ID, customer_id=chen.id, userid="lisi", content="发报价",
                                 created_at=_at(1)),
                        FollowUp(corp_id=TEST_CORP_ID, customer_id=zhao.id, userid="wangwu", content="签约",
                                 created_at=_at(30))])
    db_session.commit()
    return made


# ---------------------------------------------------------------- the demo corp


@pytest.fixture()
def demo_emu(app: Any, db_session: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The emulator seeded as the demo's corp, as the app's WeCom (like `emu`, with `seed="demo"`)."""
    from core.settings import settings
    from wecom.client import agent_client, contact_client
    from wecom.emulator import Emulator

    emulator = Emulator(corp_id=TEST_SETTINGS["WECOM_CORP_ID"], contact_secret=TEST_SETTINGS["WECOM_CONTACT_SECRET"],
                        agent_id=TEST_SETTINGS["WECOM_AGENT_ID"], agent_secret=TEST_SETTINGS["WECOM_AGENT_SECRET"],
                        token=TEST_SETTINGS["WECOM_TOKEN"], encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"],
                        callback_url=None, seed="demo", callback_backoff=(0.05, 0.1, 0.2)).start(host="127.0.0.1", port=0)
    conf = settings()
    monkeypatch.setattr(conf, "WECOM_API_BASE", emulator.url)
    monkeypatch.setattr(conf, "WECOM_OAUTH_BASE", emulator.url)
    for key in ("scrm.wecom.contact_client", "scrm.wecom.agent_client"):
        app.extensions.pop(key, None)
    contact_client().backoff = agent_client().backoff = 0.01
    try:
        yield emulator
    finally:
        for key in ("scrm.wecom.contact_client", "scrm.wecom.agent_client"):
            app.extensions.pop(key, None)
        emulator.stop()


@dataclass
class DemoCorp:
    emu: Any
    lost: list[str]  # external_userids whose customer deleted their salesperson


@pytest.fixture()
def demo_corp(app: Any, db_session: Any, demo_emu: Any, live_server: Any) -> DemoCorp:
    """The demo corp synced, with the demo's activity (for 40% of its customers: enough for every chart and
    view, quicker on PostgreSQL), two losses by callback, and the overview refreshed."""
    from console.demo import demo_activity
    from console.overview.refresh import refresh
    from crm.models import Customer, FollowRelation
    from crm.sync import FullSync
    from crm.worker import drain
    from wecom.client import contact_client

    FullSync(contact_client(), TEST_CORP_ID).run()
    run_tasks()  # the members' names and departments, read after the sync
    demo_activity(TEST_CORP_ID, share=0.4)
    db_session.commit()
    demo_emu.callback_url = live_server.url + "/wecom/callback"
    pairs = db_session.execute(select(Customer.external_userid, FollowRelation.userid).join(FollowRelation)
                               .where(FollowRelation.status == "active")
                               .order_by(Customer.external_userid).limit(2)).all()
    for ext, userid in pairs:
        demo_emu.act.customer_deletes_staff(userid, ext)
    assert demo_emu.wait_idle(15)
    drain(app)
    refresh(TEST_CORP_ID)
    db_session.commit()
    return DemoCorp(emu=demo_emu, lost=[ext for ext, _ in pairs])
