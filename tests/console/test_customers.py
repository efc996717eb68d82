"""The customer list and the customer page: search, filters, status, scope, sort orders over keyset pages,
the page's history and audit trail, and the CSV export job (resumable, the requester's own)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from tests.console.conftest import Corp, visible_text
from tests.helpers import TEST_CORP_ID, sign_in


def _principal(role: str = "admin", userid: str | None = "boss") -> Any:
    from identity.service import Principal

    return Principal(corp_id=TEST_CORP_ID, role=role, userid=userid, via="session")


def _names(p: Any = None, limit: int = 50, **args: Any) -> list[str]:
    from console.customers import listing

    params = listing.params_from_args(MultiDict(args))
    return [r["name"] for r in listing.list_page(p or _principal(), params, limit=limit)["rows"]]


def _all_pages(p: Any, sort: str, limit: int, **args: Any) -> list[str]:
    from console.customers import listing

    params = listing.params_from_args(MultiDict({"sort": sort, **args}))
    names, cursor = [], ""
    while True:
        page = listing.list_page(p, params, cursor, limit)
        names += [r["name"] for r in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            return names


def test_search_by_part_of_name_remark_corp_or_phone(corp: Corp, db_session: Any) -> None:
    assert _names(q="晓明") == ["陈晓明"]
    assert _names(q="华信") == ["陈晓明"]  # the customer's corp
    assert _names(q="周总") == ["周杰"]  # a remark
    assert _names(q="0000111") == ["周杰"]  # part of a phone number in the remark's mobiles
    assert _names(q="100%") == []  # LIKE wildcards are literal
    assert _names(q="wm-zhao") == ["赵敏"]  # a pasted customer id


def test_filters_are_the_segment_tree(corp: Corp, db_session: Any) -> None:
    tags = corp.tags
    assert sorted(_names(tag=tags["A类"])) == ["周杰", "陈晓明"]
    assert _names(tag=tags["A类"], state="web") == ["陈晓明"]  # 陈晓明 came through web too (lisi)
    assert _names(stage="成交客户") == ["赵敏"]
    assert sorted(_names(owner="lisi")) == ["周杰", "陈晓明"]
    assert sorted(_names(stage="__none__")) == ["周杰", "孙悟空"]
    assert _names(added_from="2026-10-01", added_to="2026-10-31") == ["赵敏"]
    assert sorted(_names(added_from="2026-11-20", added_to="2026-11-30")) == ["周杰", "孙悟空"]


def test_status_and_scope(corp: Corp, db_session: Any) -> None:
    assert sorted(_names()) == ["周杰", "孙悟空", "赵敏", "陈晓明"]
    assert _names(status="lost") == ["钱多多"]
    assert len(_names(status="all")) == 5
    zhangsan = _principal("staff", "zhangsan")
    assert _names(zhangsan) == ["陈晓明"] and _names(zhangsan, status="lost") == ["钱多多"]
    lisi = _principal("staff", "lisi")
    assert _names(lisi, status="lost") == ["孙悟空"]  # handed over to wangwu: lisi no longer follows him
    manager = _principal("manager", "laowang")
    assert sorted(_names(manager)) == ["周杰", "陈晓明"]
    assert _names(manager, q="赵敏") == []  # wangwu's customer is outside the team


@pytest.mark.parametrize("sort", ["added", "name", "followup"])
def test_every_sort_pages_through_everyone_once(corp: Corp, db_session: Any, sort: str) -> None:
    admin = _principal()
    whole = _all_pages(admin, sort, 50, status="all")
    assert sorted(whole) == sorted(["陈晓明", "周杰", "赵敏", "钱多多", "孙悟空"])
    assert _all_pages(admin, sort, 2, status="all") == whole  # the same order, page after page
    if sort == "added":
        assert whole[:2] == ["陈晓明", "孙悟空"]  # newest relation first (lisi added 陈晓明 a day ago)
    if sort == "followup":
        assert whole[:2] == ["陈晓明", "赵敏"] and set(whole[2:]) == {"周杰", "钱多多", "孙悟空"}  # never: last


def test_a_customer_without_any_time_is_listed_last(corp: Corp, db_session: Any) -> None:
    from crm.models import Customer, FollowRelation

    c = Customer(corp_id=TEST_CORP_ID, external_userid="wm-notime", name="无时间")
    db_session.add(c)
    db_session.flush()
    db_session.add(FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="zhangsan", added_at=None))
    db_session.commit()
    assert _all_pages(_principal(), "added", 2)[-1] == "无时间"


def test_a_bad_cursor_sends_back_to_the_first_page(client: Any, corp: Corp, db_session: Any) -> None:
    from console.customers import listing
    from core.errors import UserValueError

    with pytest.raises(UserValueError, match="翻页链接已失效"):
        listing.decode_cursor("not-a-cursor", "added")
    sign_in(client, "boss")
    answer = client.get("/console/customers", query_string={"cursor": "bad!", "q": "陈"})
    assert answer.status_code == 302 and "cursor" not in answer.headers["Location"]


def test_list_page_shows_names_tags_and_the_count(client: Any, corp: Corp, db_session: Any) -> None:
    sign_in(client, "laowang")
    html = client.get("/console/customers", query_string={"tag": corp.tags["A类"]}).get_data(as_text=True)
    assert 'id="customer-count">2<' in html
    assert "张三、李四" in html or "李四、张三" in html  # owners by name, never by userid
    text = visible_text(html)
    assert "zhangsan" not in text and "lisi" not in text
    assert "A类" in html and "客户等级" in html


def test_customer_page_history_tags_and_stages(client: Any, corp: Corp, db_session: Any) -> None:
    from crm.models import FollowRelation
    from crm.service import audit
    from tagging.assignments.service import change_relation_tags
    from tagging.lifecycle.stages import change_stage
    from tagging.rules.models import TagRule
    from crm.models import Customer

    chen = db_session.query(Customer).filter_by(external_userid=corp.customers["chen"]).one()
    rel = db_session.get(FollowRelation, corp.relations[f"{chen.external_userid}:zhangsan"])
    rule = TagRule(corp_id=TEST_CORP_ID, name="展会客户", trigger="customer_added", actions=[])
    db_session.add(rule)
    db_session.flush()
    change_relation_tags(TEST_CORP_ID, rel, [corp.tags["B类"]], [corp.tags["A类"]], actor=f"rule:{rule.id}",
                         source="rule")
    change_stage(TEST_CORP_ID, chen, "成交客户", "zhangsan")
    # an earlier loss the row no longer shows: lisi was deleted by the customer, then added again
    audit(TEST_CORP_ID, "wecom", "relation.deleted_by_customer", "customer", chen.external_userid,
          {"userid": "lisi"}).at = rel.added_at
    db_session.commit()
    sign_in(client, "laowang")
    html = client.get(f"/console/customers/{chen.external_userid}").get_data(as_text=True)
    assert "陈晓明" in html and "华信科技" in html
    assert "张三 添加了客户" in html and "渠道：expo" in html
    assert "客户删除了 李四" in html and "之后又重新添加" in html
    assert "自动规则「展会客户」" in html and "B类" in html and "移除" in html
    assert "意向客户 → <strong>成交客户</strong>" in html
    assert "zhangsan" not in visible_text(html) and "lisi" not in visible_text(html)  # names, not userids


def test_customer_page_out_of_scope_is_404_in_chinese(client: Any, corp: Corp, db_session: Any) -> None:
    sign_in(client, "zhangsan")
    answer = client.get(f"/console/customers/{corp.customers['zhao']}")
    assert answer.status_code == 404
    html = answer.get_data(as_text=True)
    assert "找不到该客户" in html and "返回控制台首页" in html and "Not Found" not in html


def test_export_runs_as_a_job_resumes_and_downloads(client: Any, app: Any, corp: Corp, db_session: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from console.customers import exports
    from console.customers.models import CustomerExport

    monkeypatch.setitem(app.config, "CONSOLE_EXPORTS_INLINE", False)
    sign_in(client, "boss")
    answer = client.post("/console/customers/export", data={"csrf_token": "t", "status": "all", "sort": "name"})
    assert answer.status_code == 302
    job = db_session.query(CustomerExport).one()
    assert job.total == 5 and job.status == "pending"
    # the process dies after the first part: the next run resumes after it, nothing twice
    monkeypatch.setattr(exports, "CHUNK", 2)
    real, calls = exports.list_page, []

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # like kill -9: nothing after the first commit is kept
        return real(*args, **kwargs)

    monkeypatch.setattr(exports, "list_page", dying)
    with pytest.raises(KeyboardInterrupt):
        exports.run_export(job.id)
    db_session.rollback()
    db_session.refresh(job)
    assert (job.status, job.done, job.parts) == ("running", 2, 1)
    monkeypatch.setattr(exports, "list_page", real)
    job.heartbeat_at = job.heartbeat_at - exports.STALE * 2  # its process is gone
    db_session.commit()
    assert exports.run_pending(TEST_CORP_ID) == 1
    status = client.get(f"/console/customers/exports/{job.id}/status").get_json()
    assert status["status"] == "done" and status["percent"] == 100 and status["done"] == 5
    download = client.get(f"/console/customers/exports/{job.id}/download")
    text = download.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["客户名称", "客户ID", "备注"] and len(rows) == 6
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])  # the list's order (by name)
    zhou = next(r for r in rows if r[0] == "周杰")
    assert zhou[2] == "周总" and zhou[5] == "13800001111" and zhou[6] == "李四" and "客户等级：A类" in zhou[7]
    # somebody else cannot open it
    sign_in(client, "xiaomei")
    assert client.get(f"/console/customers/exports/{job.id}").status_code == 404


def test_an_export_holds_only_what_its_requester_may_see(client: Any, app: Any, corp: Corp, db_session: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from console.customers import exports
    from console.customers.models import CustomerExport

    monkeypatch.setitem(app.config, "CONSOLE_EXPORTS_INLINE", False)
    sign_in(client, "zhangsan")
    client.post("/console/customers/export", data={"csrf_token": "t", "status": "all"})
    job = db_session.query(CustomerExport).one()
    exports.run_export(job.id)
    text = client.get(f"/console/customers/exports/{job.id}/download").get_data(as_text=True)
    assert "陈晓明" in text and "钱多多" in text and "赵敏" not in text and "周杰" not in text


def test_old_exports_are_deleted(corp: Corp, db_session: Any) -> None:
    import datetime as dt

    from console.customers import exports
    from console.customers.models import CustomerExport, CustomerExportPart

    old = CustomerExport(corp_id=TEST_CORP_ID, params={}, role="admin", userid="boss", status="done",
                         created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    db_session.add(old)
    db_session.flush()
    db_session.add(CustomerExportPart(corp_id=TEST_CORP_ID, export_id=old.id, seq=1, content="x"))
    db_session.commit()
    assert exports.purge_expired(TEST_CORP_ID) == 1
    db_session.commit()
    assert db_session.query(CustomerExportPart).count() == 0
