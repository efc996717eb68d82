"""The overview: its pre-aggregates match the customer tables after every kind of write, its figures
follow the period, the department and the channel within the caller's scope, and its data comes out
the same in the page, the CSV downloads and the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.conftest import NOW, Corp
from tests.helpers import TEST_CORP_ID, sign_in

DAY = dt.timedelta(days=1)
TODAY = NOW.date()  # NOW is noon in China


def _refresh(**kwargs: Any) -> Any:
    from console.overview.refresh import refresh
    from core.db import db

    stats = refresh(TEST_CORP_ID, now=kwargs.pop("now", NOW), **kwargs)
    db.session.commit()
    return stats


def _daily() -> dict[tuple[str, str, str], tuple[int, int, int]]:
    from console.overview.models import OverviewDaily
    from core.db import db

    return {(str(r.day), r.userid, r.state): (r.added, r.lost, r.followups)
            for r in db.session.scalars(select(OverviewDaily).where(OverviewDaily.corp_id == TEST_CORP_ID))}


def _filters(role: str = "admin", userid: str | None = "boss", start: str | None = None, end: str | None = None,
             department: Any = None, channel: Any = None) -> Any:
    from console.overview.service import filters_for
    from identity.service import Principal

    principal = Principal(corp_id=TEST_CORP_ID, role=role, userid=userid, via="session")
    return filters_for(principal, start or (TODAY - 59 * DAY).isoformat(), end or TODAY.isoformat(), department, channel)


def test_daily_events_by_china_day_staff_and_channel(corp: Corp, db_session: Any) -> None:
    _refresh()
    daily = _daily()
    day = lambda n: str(TODAY - n * DAY)  # noqa: E731
    assert daily[(day(3), "zhangsan", "expo")] == (1, 0, 0)
    assert daily[(day(1), "lisi", "web")] == (1, 0, 1)  # lisi added chen, and wrote a note about him
    assert daily[(day(2), "zhangsan", "expo")] == (0, 1, 1)  # 钱多多 deleted zhangsan; zhangsan's note on chen
    assert daily[(day(5), "wangwu", "web")] == (1, 0, 0)  # the handover's new relation ...
    assert (day(5), "lisi", "web") not in daily  # ... and the transfer away is not a loss
    assert sum(a for a, _, _ in daily.values()) == 7 and sum(lost for _, lost, _ in daily.values()) == 1


def test_a_day_is_a_china_day(corp: Corp, db_session: Any) -> None:
    """17:30 UTC on the 1st is 01:30 on the 2nd in China: it counts on the 2nd."""
    from crm.models import Customer, FollowRelation

    night = Customer(corp_id=TEST_CORP_ID, external_userid="wm-night", name="夜猫子")
    db_session.add(night)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=night.id, userid="zhangsan", state="night",
                                  added_at=dt.datetime(2026, 12, 1, 17, 30, tzinfo=dt.timezone.utc)))
    db_session.commit()
    _refresh()
    assert _daily()[("2026-12-02", "zhangsan", "night")] == (1, 0, 0)


def test_each_customer_counts_once_in_the_funnel_and_the_tags(corp: Corp, db_session: Any) -> None:
    from console.overview import service

    _refresh()
    everyone = _filters()
    funnel = service.funnel(everyone)
    assert [(s["stage"], s["current"], s["reached"]) for s in funnel["steps"]][:3] == [
        ("潜在客户", 0, 2), ("意向客户", 1, 2), ("成交客户", 1, 1)]
    assert funnel["unset"] == 2  # 周杰 and 孙悟空 (钱多多 is lost: not a current customer)
    assert funnel["steps"][1]["rate"] == 100.0 and funnel["steps"][2]["rate"] == 50.0
    tags = {t["name"]: t["customers"] for g in service.tag_groups(everyone) for t in g["tags"]}
    assert tags == {"A类": 2, "B类": 1, "教育": 1}  # 陈晓明 has A类 and 教育 on two relations: once each
    figures = service.figures(everyone)
    assert (figures["customers"], figures["relations"]) == (4, 5)
    # 陈晓明 belongs to zhangsan (the first to add him) and the expo channel, so department 1 and
    # channel expo count him; department 2 and channel web do not
    expo = _filters(channel="expo")
    assert service.figures(expo)["customers"] == 2 and service.funnel(expo)["steps"][1]["current"] == 1
    web = _filters(channel="web")
    assert service.figures(web)["customers"] == 2  # 孙悟空 (wangwu, web), and 陈晓明 through lisi (web)
    assert service.funnel(web)["unset"] == 1  # but only 孙悟空 belongs to web (陈晓明 came through expo first)
    dept2 = _filters(department=2)
    assert service.figures(dept2)["customers"] == 2 and {t["name"]: t["customers"] for g in service.tag_groups(dept2)
                                                         for t in g["tags"]} == {"A类": 0, "B类": 1, "教育": 0}


def test_staff_table_and_growth_follow_the_period(corp: Corp, db_session: Any) -> None:
    from console.overview import service

    _refresh()
    week = _filters(start=(TODAY - 6 * DAY).isoformat())
    rows = {r["userid"]: r for r in service.staff_table(week)}
    assert rows["zhangsan"] == {**rows["zhangsan"], "name": "张三", "customers": 1, "added": 1, "lost": 1,
                                "followups": 1}
    assert rows["lisi"]["customers"] == 2 and rows["lisi"]["added"] == 1 and "zhao" not in rows
    assert rows["wangwu"]["added"] == 1 and rows["wangwu"]["followups"] == 0  # 赵敏 was signed 30 days ago
    growth = service.growth(week)
    assert growth["granularity"] == "day" and len(growth["points"]) == 7
    by_day = {p["start"]: (p["added"], p["lost"]) for p in growth["points"]}
    assert by_day[str(TODAY - 3 * DAY)] == (1, 0) and by_day[str(TODAY - 2 * DAY)] == (0, 1)
    year = service.growth(_filters(start=(TODAY - 364 * DAY).isoformat()))
    assert year["granularity"] == "week" and sum(p["added"] for p in year["points"]) == 7
    assert all(dt.date.fromisoformat(p["start"]).weekday() == 0 for p in year["points"][1:])


def test_whole_months_come_from_the_monthly_rollup_and_agree_with_the_days(corp: Corp, db_session: Any) -> None:
    """A long period's staff table reads whole months from `overview_monthly`; the sums are the days'."""
    from console.overview import service
    from console.overview.models import OverviewMonthly
    from crm.models import Customer, FollowRelation

    for i, when in enumerate((NOW - 100 * DAY, NOW - 70 * DAY, NOW - 70 * DAY, NOW - 35 * DAY)):
        c = Customer(corp_id=TEST_CORP_ID, external_userid=f"wm-m{i}", name=f"月{i}")
        db_session.add(c)
        db_session.flush()
        db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="wangwu", state="ad", added_at=when))
    db_session.commit()
    _refresh()
    assert db_session.query(OverviewMonthly).filter_by(userid="wangwu").count() >= 3
    year = _filters(start=(TODAY - 364 * DAY).isoformat())
    from_rollup = {r["userid"]: (r["added"], r["lost"], r["followups"]) for r in service.staff_table(year)}
    ad = _filters(start=(TODAY - 364 * DAY).isoformat(), channel="ad")  # a channel: days only
    assert {r["userid"]: r["added"] for r in service.staff_table(ad)} == {"wangwu": 4}
    daily = _daily()
    for userid, (added, lost, notes) in from_rollup.items():
        assert (added, lost, notes) == tuple(sum(v[i] for (day, u, _), v in daily.items() if u == userid)
                                             for i in range(3)), userid
    assert from_rollup["wangwu"][0] == 6  # 赵敏, 孙悟空 and the four above


def test_scope_staff_see_their_own_managers_their_team(corp: Corp, db_session: Any) -> None:
    from console.overview import service
    from core.errors import UserValueError

    _refresh()
    mine = _filters("staff", "zhangsan")
    assert service.figures(mine)["customers"] == 1 and {r["userid"] for r in service.staff_table(mine)} == {"zhangsan"}
    team = _filters("manager", "laowang")
    assert {r["userid"] for r in service.staff_table(team)} == {"zhangsan", "lisi"}
    assert service.figures(team)["customers"] == 2  # 陈晓明 (zhangsan's and lisi's: once), 周杰 (lisi's)
    with pytest.raises(UserValueError, match="不在您的查看范围"):
        _filters("manager", "laowang", department=2)
    with pytest.raises(UserValueError, match="开始日期不能晚于结束日期"):
        _filters(start="2026-12-04", end="2026-12-01")


def test_incremental_refresh_catches_old_rows_new_rows_and_readded_relations(corp: Corp, db_session: Any) -> None:
    from console.overview.refresh import RECENT_DAYS
    from crm.models import Customer, FollowRelation

    first = _refresh()
    assert first.full
    # a full sync brings in a customer added long ago: rows above the watermark rebuild their days
    old = Customer(corp_id=TEST_CORP_ID, external_userid="wm-old", name="老客户")
    db_session.add(old)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=old.id, userid="wangwu", state="",
                                  added_at=NOW - 200 * DAY))
    db_session.commit()
    second = _refresh(now=NOW + dt.timedelta(minutes=5))
    assert not second.full and second.first_day == (NOW - 200 * DAY).date()
    assert _daily()[(str((NOW - 200 * DAY).date()), "wangwu", "")] == (1, 0, 0)
    # the customer deletes zhangsan and is added again: the same row gets a new added_at and no lost_at,
    # which changes two old days; the next refresh notices and rebuilds every day
    rel = db_session.get(FollowRelation, corp.relations["wm-lost:zhangsan"])
    rel.status, rel.lost_at, rel.lost_reason, rel.added_at = "active", None, None, NOW + dt.timedelta(minutes=7)
    db_session.commit()
    third = _refresh(now=NOW + dt.timedelta(minutes=10))
    assert third.full
    daily = _daily()
    assert (str(TODAY - 2 * DAY), "zhangsan", "expo") not in {k for k, v in daily.items() if v[1]}
    assert daily[(str(TODAY), "zhangsan", "expo")] == (1, 0, 0)
    assert RECENT_DAYS >= 3


def test_the_recent_window_covers_events_applied_late(corp: Corp, db_session: Any) -> None:
    """An event stamped yesterday but applied today (the worker was down overnight) is counted."""
    from crm.models import FollowRelation

    _refresh()
    rel = db_session.get(FollowRelation, corp.relations["wm-zhou:lisi"])
    rel.status, rel.lost_at, rel.lost_reason = "lost", NOW - DAY, "del_external_contact"
    db_session.commit()
    assert not _refresh(now=NOW + dt.timedelta(minutes=5)).full
    assert _daily()[(str(TODAY - DAY), "lisi", "expo")][1] == 1


def test_full_rebuild_equals_incremental(corp: Corp, db_session: Any) -> None:
    """Whatever the incremental path kept, a full rebuild from the tables gives the same rows."""
    from crm.models import FollowUp

    _refresh()
    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=db_session.scalar(
        select(FollowUp.customer_id).limit(1)), userid="zhangsan", content="再次沟通", created_at=NOW))
    db_session.commit()
    _refresh(now=NOW + dt.timedelta(minutes=1))
    incremental = _daily()
    _refresh(now=NOW + dt.timedelta(minutes=2), full=True)
    assert _daily() == incremental


def test_nightly_rebuild_is_due_once_after_the_nightly_hour() -> None:
    from console.overview.jobs import rebuild_due

    local = dt.datetime(2026, 12, 4, 6, 0).astimezone()  # 06:00 server time; sync at 3, rebuild from 5
    assert rebuild_due(None, local, 3)
    assert rebuild_due(local.replace(hour=4), local, 3)
    assert not rebuild_due(local.replace(hour=5, minute=30), local, 3)
    assert not rebuild_due(local.replace(hour=4), local.replace(hour=4, minute=50), 3)  # not yet 05:00


def test_page_csv_and_api_say_the_same(client: Any, corp: Corp, db_session: Any) -> None:
    _refresh()
    sign_in(client, "boss")
    query = {"from": (TODAY - 6 * DAY).isoformat(), "to": TODAY.isoformat()}
    page = client.get("/console/", query_string=query)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "客户增长与流失" in html and "阶段漏斗" in html and "张三" in html
    assert 'id="fig-added">3<' in html and 'id="fig-lost">1<' in html
    api = client.get("/api/v1/overview", query_string=query).get_json()
    assert api["figures"] == {"customers": 4, "relations": 5, "added": 3, "lost": 1, "net": 2, "followups": 2}
    assert api["from"] == query["from"] and api["refreshed_at"]
    assert {r["name"] for r in api["staff"]} == {"张三", "李四", "王五"}
    answer = client.get("/console/overview/staff.csv", query_string=query)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "filename*=UTF-8''" in answer.headers["Content-Disposition"]
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["成员", "跟进中的客户", "新增", "流失", "跟进次数"] and ["张三", "1", "1", "1", "1"] in rows
    for section in ("growth", "tags", "funnel"):
        assert client.get(f"/console/overview/{section}.csv", query_string=query).status_code == 200
    assert client.get("/console/overview/nope.csv").status_code == 404


def test_bad_filters_answer_in_chinese(client: Any, corp: Corp, db_session: Any) -> None:
    sign_in(client, "boss")
    bad = client.get("/api/v1/overview", query_string={"from": "2026-13-01"})
    assert bad.status_code == 422 and bad.get_json()["error"]["fields"]["from"]
    wrong_way = client.get("/api/v1/overview", query_string={"from": "2026-12-04", "to": "2026-12-01"})
    assert wrong_way.status_code == 422 and "开始日期不能晚于结束日期" in wrong_way.get_json()["error"]["message"]
    page = client.get("/console/", query_string={"from": "2026-12-04", "to": "2026-12-01"})
    assert page.status_code == 302
    assert "筛选条件有误" in client.get(page.headers["Location"]).get_data(as_text=True)


def test_an_unrefreshed_overview_says_it_is_being_prepared(client: Any, corp: Corp, db_session: Any) -> None:
    sign_in(client, "boss")
    html = client.get("/console/").get_data(as_text=True)
    assert "统计数据正在首次生成" in html


def test_cli_refresh(runner: Any, corp: Corp, db_session: Any) -> None:
    result = runner.invoke(args=["console", "overview-refresh", "--full"])
    assert result.exit_code == 0, result.output
    assert "overview refreshed" in result.output and "every day" in result.output
