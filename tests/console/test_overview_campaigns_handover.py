"""The overview's campaign delivery (群发触达) and handover outcome (客户交接结果) sections: read from the
campaigns' recipients and the handover jobs' customers, by China day, within the caller's scope and the
chosen department; the same in the page, the CSV downloads and the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from tests.console.conftest import NOW, Corp
from tests.helpers import TEST_CORP_ID, sign_in

DAY = dt.timedelta(days=1)
TODAY = NOW.date()  # 2026-12-04, NOW is noon in China
UTC = dt.timezone.utc


def _filters(role: str = "admin", userid: str | None = "boss", start: str | None = None, end: str | None = None,
             department: Any = None) -> Any:
    from console.overview.service import filters_for
    from identity.service import Principal

    principal = Principal(corp_id=TEST_CORP_ID, role=role, userid=userid, via="session")
    return filters_for(principal, start or (TODAY - 29 * DAY).isoformat(), end or TODAY.isoformat(), department)


def _campaign(db_session: Any, name: str, send_at: dt.datetime, status: str, recipients: list[tuple[Any, ...]],
              chat_type: str = "single", store_counts: bool = False) -> int:
    """A campaign and its recipients: (sender or None, status, reason or None, how many)."""
    from campaigns.models import Campaign, CampaignRecipient
    from campaigns.planning import recipient_counts

    campaign = Campaign(corp_id=TEST_CORP_ID, name=name, chat_type=chat_type, send_at=send_at, status=status,
                        created_by="xiaomei", creator_userid="xiaomei", counts={}, progress={})
    db_session.add(campaign)
    db_session.flush()
    pk = campaign.id * 1000
    for sender, state, reason, n in recipients:
        for _ in range(n):
            pk += 1
            db_session.add(CampaignRecipient(corp_id=TEST_CORP_ID, campaign_id=campaign.id, target_pk=pk,
                                             target=f"wm-r{pk}", sender_userid=sender, status=state, reason=reason))
    db_session.flush()
    if store_counts:  # as the campaign's end stores them
        campaign.counts = recipient_counts(campaign.id)
    db_session.commit()
    return campaign.id


def _campaigns(db_session: Any) -> dict[str, int]:
    """双十二预热 (following, 3 days ago): zhangsan 3 delivered, 1 not a friend, 1 unsent; lisi 2 delivered,
    1 over quota; wangwu 1 delivered, 1 waiting; excluded: 1 lost (no sender), 1 over quota (wangwu).
    老客户回访 (done, counts stored; 2026-12-01 01:00 in China, 11-30 17:00 UTC): zhangsan 4 delivered.
    Left out: a group-chat campaign, one sent 40 days ago, one scheduled, one cancelled before planning."""
    ids = {
        "预热": _campaign(db_session, "双十二预热", NOW - 3 * DAY, "following", [
            ("zhangsan", "delivered", None, 3), ("zhangsan", "not_friend", None, 1), ("zhangsan", "unsent", None, 1),
            ("lisi", "delivered", None, 2), ("lisi", "quota", None, 1),
            ("wangwu", "delivered", None, 1), ("wangwu", "planned", None, 1),
            (None, "excluded", "lost", 1), ("wangwu", "excluded", "quota", 1)]),
        "回访": _campaign(db_session, "老客户回访", dt.datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "done",
                        [("zhangsan", "delivered", None, 4)], store_counts=True),
    }
    _campaign(db_session, "群公告", NOW - 2 * DAY, "done", [("zhangsan", "delivered", None, 5)], chat_type="group")
    _campaign(db_session, "上个月", NOW - 40 * DAY, "done", [("zhangsan", "delivered", None, 5)], store_counts=True)
    _campaign(db_session, "明天发", NOW + DAY, "scheduled", [])
    _campaign(db_session, "取消了", NOW - DAY, "cancelled", [])
    return ids


def _job(db_session: Any, handover: str, created: dt.datetime, customers: list[tuple[str | None, str, int]],
         kind: str = "resigned") -> int:
    """A handover job and its customers: (takeover or None, status, how many)."""
    from handover.models import HandoverCustomer, HandoverJob

    takeovers = sorted({t for t, _, _ in customers if t})
    job = HandoverJob(corp_id=TEST_CORP_ID, kind=kind, handover_userid=handover, takeover_userids=takeovers,
                      created_by="laowang", creator_userid="laowang", created_at=created, counts={})
    db_session.add(job)
    db_session.flush()
    i = 0
    for takeover, status, n in customers:
        for _ in range(n):
            i += 1
            db_session.add(HandoverCustomer(corp_id=TEST_CORP_ID, job_id=job.id, external_userid=f"wm-h{job.id}-{i}",
                                            takeover_userid=takeover, status=status))
    db_session.commit()
    return job.id


def _jobs(db_session: Any) -> None:
    """lisi's customers (3 days ago) to wangwu (2 done, 1 waiting, 1 refused) and zhangsan (1 done, 1 at his
    limit), 1 excluded; wangwu's (yesterday) to zhangsan: 1 without a record, 1 failed. Left out: a job
    70 days ago."""
    _job(db_session, "lisi", NOW - 3 * DAY, [("wangwu", "done", 2), ("wangwu", "waiting", 1), ("wangwu", "refused", 1),
                                             ("zhangsan", "done", 1), ("zhangsan", "limit", 1), (None, "excluded", 1)])
    _job(db_session, "wangwu", NOW - DAY, [("zhangsan", "no_record", 1), ("zhangsan", "failed", 1)], kind="onjob")
    _job(db_session, "zhangsan", NOW - 70 * DAY, [("lisi", "done", 9)], kind="onjob")


def _by_name(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in section["campaigns"]}


# ---------------------------------------------------------------- campaign delivery


def test_campaign_delivery_counts_recipients_by_result(corp: Corp, db_session: Any) -> None:
    from console.overview import service

    _campaigns(db_session)
    data = service.campaign_delivery(_filters())
    assert [c["name"] for c in data["campaigns"]] == ["双十二预热", "老客户回访"]  # newest first; customers only
    warm = _by_name(data)["双十二预热"]
    assert {k: warm[k] for k in ("sent", "delivered", "not_delivered", "planned", "unsent", "not_friend", "quota",
                                 "failed", "cancelled", "excluded", "rate")} == {
        "sent": 10, "delivered": 6, "not_delivered": 4, "planned": 1, "unsent": 1, "not_friend": 1, "quota": 1,
        "failed": 0, "cancelled": 0, "excluded": 2, "rate": 60.0}
    visit = _by_name(data)["老客户回访"]  # finished: its stored counts
    assert (visit["sent"], visit["delivered"], visit["rate"], visit["excluded"]) == (4, 4, 100.0, 0)
    assert data["total"]["sent"] == 14 and data["total"]["delivered"] == 10 and data["total"]["rate"] == 71.4
    assert data["more"] is False  # the cancelled one had no recipients to show


def test_campaign_delivery_lists_the_latest(corp: Corp, db_session: Any, monkeypatch: Any) -> None:
    from console.overview import service

    _campaigns(db_session)
    monkeypatch.setattr(service, "MAX_CAMPAIGNS", 2)  # 取消了 (yesterday, nothing to show), 双十二预热
    data = service.campaign_delivery(_filters())
    assert [c["name"] for c in data["campaigns"]] == ["双十二预热"] and data["more"] is True


def test_campaign_delivery_by_china_day(corp: Corp, db_session: Any) -> None:
    """老客户回访 went out at 01:00 on 12-01 in China (17:00 on 11-30 UTC): it is 12-01's."""
    from console.overview import service

    _campaigns(db_session)
    assert [c["name"] for c in service.campaign_delivery(_filters(start="2026-12-01", end="2026-12-01"))["campaigns"]] \
        == ["双十二预热", "老客户回访"]  # 12:00 and 01:00 on 12-01
    assert service.campaign_delivery(_filters(start="2026-11-30", end="2026-11-30"))["campaigns"] == []


def test_campaign_delivery_follows_the_department_and_the_scope(corp: Corp, db_session: Any) -> None:
    """A department (or a member's own scope) counts the recipients its members send; a campaign none of
    them sent is left out."""
    from console.overview import service

    _campaigns(db_session)
    team = _by_name(service.campaign_delivery(_filters(department=1)))  # zhangsan, lisi, laowang
    assert (team["双十二预热"]["sent"], team["双十二预热"]["delivered"], team["双十二预热"]["excluded"]) == (8, 5, 0)
    assert team["双十二预热"]["rate"] == 62.5 and team["老客户回访"]["delivered"] == 4  # counted live here
    wangwu = service.campaign_delivery(_filters(department=2))
    assert [(c["name"], c["sent"], c["delivered"], c["planned"], c["excluded"]) for c in wangwu["campaigns"]] == [
        ("双十二预热", 2, 1, 1, 1)]
    own = _by_name(service.campaign_delivery(_filters(role="staff", userid="lisi")))
    assert list(own) == ["双十二预热"] and (own["双十二预热"]["sent"], own["双十二预热"]["quota"]) == (3, 1)
    manager = _by_name(service.campaign_delivery(_filters(role="manager", userid="laowang")))
    assert manager["双十二预热"]["sent"] == 8  # their team: zhangsan and lisi


def test_campaign_delivery_empty(corp: Corp, db_session: Any) -> None:
    from console.overview import service

    data = service.campaign_delivery(_filters())
    assert data["campaigns"] == [] and data["total"]["rate"] is None


# ---------------------------------------------------------------- handover outcomes


def test_handover_outcomes_overall_and_per_takeover(corp: Corp, db_session: Any) -> None:
    from console.overview import service

    _jobs(db_session)
    data = service.handover_outcomes(_filters())
    assert data["jobs"] == 2 and data["total"] == 9
    assert {o["status"]: o["customers"] for o in data["outcomes"]} == {
        "done": 3, "waiting": 1, "queued": 0, "refused": 1, "limit": 1, "no_record": 1, "failed": 1, "excluded": 1}
    assert {o["status"]: o["label"] for o in data["outcomes"]}["refused"] == "客户拒绝"
    assert [(t["name"], t["total"], t["done"], t["waiting"], t["refused"], t["limit"], t["no_record"], t["failed"])
            for t in data["takeovers"]] == [("王五", 4, 2, 1, 1, 0, 0, 0), ("张三", 4, 1, 0, 0, 1, 1, 1)]


def test_handover_outcomes_follow_the_department(corp: Corp, db_session: Any) -> None:
    """A customer counts for a department when its handing-over or its taking-over colleague is in it."""
    from console.overview import service

    _jobs(db_session)
    wangwu = service.handover_outcomes(_filters(department=2))  # took over 4 of lisi's; handed over 2
    assert wangwu["total"] == 6 and wangwu["jobs"] == 2
    assert {t["name"]: t["total"] for t in wangwu["takeovers"]} == {"王五": 4, "张三": 2}
    team = service.handover_outcomes(_filters(department=1))  # lisi's whole job, zhangsan's takeovers
    assert team["total"] == 9
    own = service.handover_outcomes(_filters(role="staff", userid="zhangsan"))
    assert own["total"] == 4 and [t["name"] for t in own["takeovers"]] == ["张三"]
    assert service.handover_outcomes(_filters(start="2026-09-01", end="2026-09-30"))["total"] == 9  # 70 days ago
    none = service.handover_outcomes(_filters(start="2026-11-01", end="2026-11-30"))
    assert (none["jobs"], none["total"], none["takeovers"]) == (0, 0, [])


# ---------------------------------------------------------------- page, CSV, API


def _csv(client: Any, section: str, query: dict[str, str]) -> list[list[str]]:
    answer = client.get(f"/console/overview/{section}.csv", query_string=query)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_page_csv_and_api_show_both_sections(client: Any, corp: Corp, db_session: Any) -> None:
    _campaigns(db_session)
    _jobs(db_session)
    sign_in(client, "boss")
    query = {"from": (TODAY - 6 * DAY).isoformat(), "to": TODAY.isoformat()}
    html = client.get("/console/", query_string=query).get_data(as_text=True)
    assert "群发触达" in html and "双十二预热" in html and 'id="chart-campaigns"' in html
    assert "客户交接结果" in html and 'id="chart-handover"' in html and 'id="chart-takeovers"' in html
    assert "王五" in html and "wangwu</td>" not in html
    api = client.get("/api/v1/overview", query_string=query).get_json()
    assert [(c["name"], c["sent"], c["delivered"], c["rate"]) for c in api["campaigns"]["campaigns"]] == [
        ("双十二预热", 10, 6, 60.0), ("老客户回访", 4, 4, 100.0)]
    assert api["campaigns"]["campaigns"][1]["send_at"].startswith("2026-11-30T17:00")
    assert api["handover"]["total"] == 9 and [t["name"] for t in api["handover"]["takeovers"]] == ["王五", "张三"]

    rows = _csv(client, "campaigns", query)
    assert rows[0][:6] == ["群发", "发送时间（北京时间）", "计划发送", "已送达", "送达率", "未送达"]
    assert "非好友" in rows[0] and "成员未发送" in rows[0]
    assert rows[1][:6] == ["双十二预热", "2026-12-01 12:00", "10", "6", "60.0%", "4"]
    assert rows[2][:2] == ["老客户回访", "2026-12-01 01:00"]
    rows = _csv(client, "handover", query)
    assert rows[0][:4] == ["接替成员", "客户合计", "已接替", "等待接替"] and "客户拒绝" in rows[0]
    assert rows[1][:4] == ["王五", "4", "2", "1"] and rows[-1][:3] == ["全部（含未分配接替成员的客户）", "9", "3"]

    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    out = next(s for name, s in schemas.items() if name.startswith("OverviewOut"))
    assert {"campaigns", "handover"} <= set(out["properties"])
    assert any(name.startswith("OverviewCampaign") for name in schemas) and any(
        name.startswith("OverviewTakeover") for name in schemas)


def test_empty_sections_link_only_to_pages_the_role_may_open(client: Any, corp: Corp, db_session: Any) -> None:
    from tests.console.conftest import visible_text

    def empty_states(userid: str) -> str:
        sign_in(client, userid)
        html = client.get("/console/").get_data(as_text=True)
        assert "这段时间没有群发" in html and "这段时间没有客户交接" in html
        return visible_text(html)

    admin = empty_states("boss")  # both pages
    assert "去群发页面" in admin and "去客户交接页面" in admin
    marketer = empty_states("xiaomei")  # campaigns, not handovers
    assert "去群发页面" in marketer and "去客户交接页面" not in marketer
    manager = empty_states("laowang")  # both
    assert "去群发页面" in manager and "去客户交接页面" in manager
    staff = empty_states("zhangsan")  # neither
    assert "去群发页面" not in staff and "去客户交接页面" not in staff
