"""The filter compiler, preview, saved segments, their API and the console builder."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.helpers import TEST_CORP_ID
from tests.helpers import sign_in as open_session
from tests.tagging.conftest import Base, add_customer, token


def ids(base: Base, tree: Any, scope: Any = None) -> set[str]:
    from core.db import db
    from tagging.segments.service import compile_filter

    rows = db.session.scalars(compile_filter(TEST_CORP_ID, tree, scope=scope)).all()
    by_id = {c.id: nick for nick, c in base.customers.items()}
    return {by_id[r] for r in rows}


def test_every_node(base: Base, db_session: Any) -> None:
    t = base.tags
    assert ids(base, {"all": []}) == {"a", "b", "c"}  # d and gone have no active relation
    assert ids(base, {"tag": t["A类"]}) == {"a", "b"}
    assert ids(base, {"tag": t["教育"]}) == {"a"}  # d's 教育 sits on a lost relation
    assert ids(base, {"any": [{"tag": t["A类"]}, {"tag": t["金融"]}]}) == {"a", "b", "c"}
    assert ids(base, {"not": {"tag": t["A类"]}}) == {"c"}
    assert ids(base, {"stage": ["意向客户", "成交客户"]}) == {"a", "b"}
    assert ids(base, {"stage": [None]}) == {"c"}
    assert ids(base, {"followed_by": ["lisi"]}) == {"b"}
    assert ids(base, {"added_after": "2026-03-01"}) == {"b", "c"}
    assert ids(base, {"added_before": "2026-02-01"}) == {"a"}
    assert ids(base, {"all": [{"added_after": "2026-02-01"}, {"added_before": "2026-03-03"}]}) == {"b"}
    assert ids(base, {"state": "expo"}) == {"a"}
    assert ids(base, {"state": ["expo", "web"]}) == {"a", "c"}


def test_added_dates_are_china_dates(base: Base, db_session: Any) -> None:
    # a was added 2026-01-10 02:00 UTC = 10:00 China time on the 10th
    assert "a" in ids(base, {"added_after": "2026-01-10"})
    assert "a" not in ids(base, {"added_after": "2026-01-10T11:00:00"})  # naive = China time
    assert "a" in ids(base, {"added_after": "2026-01-10T01:00:00Z"})


def test_wecom_tags_or_within_group_and_across(base: Base, db_session: Any) -> None:
    t = base.tags
    assert ids(base, {"wecom_tags": [t["A类"], t["B类"]]}) == {"a", "b", "c"}  # one group: OR
    assert ids(base, {"wecom_tags": [t["A类"], t["B类"], t["教育"]]}) == {"a"}  # two groups: AND
    assert ids(base, {"wecom_tags": [t["B类"], t["金融"], t["教育"]]}) == {"c"}
    assert ids(base, {"wecom_tags": [t["A类"], t["B类"], t["金融"], t["教育"]]}) == {"a", "c"}


def test_no_followup_days(base: Base, db_session: Any) -> None:
    from crm.models import FollowUp
    from core.db import utcnow

    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=base.customers["a"].id, userid="zhangsan",
                            content="聊过", created_at=utcnow() - dt.timedelta(days=2)))
    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=base.customers["b"].id, userid="zhangsan",
                            content="很久以前", created_at=utcnow() - dt.timedelta(days=40)))
    db_session.commit()
    assert ids(base, {"no_followup_days": 7}) == {"b", "c"}
    assert ids(base, {"no_followup_days": 60}) == {"c"}
    assert ids(base, {"all": [{"stage": ["成交客户"]}, {"no_followup_days": 30}]}) == {"b"}


def test_event_and_tier_nodes(base: Base, db_session: Any) -> None:
    from core.db import utcnow
    from tagging.lifecycle.models import BehaviorEvent, ValueTier

    now = utcnow()
    for i, (nick, path, days) in enumerate([("a", "/products/A/1", 1), ("a", "/products/A/2", 2),
                                            ("a", "/products/A", 2), ("b", "/products/A/1", 1),
                                            ("b", "/products/A/1", 1), ("b", "/products/A/1", 10),
                                            ("c", "/products/AB", 1), ("c", "/products/B", 1)]):
        db_session.add(BehaviorEvent(corp_id=TEST_CORP_ID, event_id=f"e{i}", customer_id=base.customers[nick].id,
                                     type="page_view", at=now - dt.timedelta(days=days, hours=1), path=path))
    db_session.add(ValueTier(corp_id=TEST_CORP_ID, customer_id=base.customers["c"].id, tier="潜力"))
    db_session.commit()
    hot = {"event": {"type": "page_view", "path_prefix": "/products/A", "min_count": 3, "within_days": 3}}
    assert ids(base, hot) == {"a"}  # b's third view is 10 days old; c's /products/AB counts but only once
    assert ids(base, {"event": {"type": "page_view", "path_prefix": "/products/A/"}}) == {"a", "b"}
    assert ids(base, {"event": {"type": "page_view", "path_prefix": "/products/A_"}}) == set()  # _ is literal
    assert ids(base, {"event": {"type": "order"}}) == set()
    assert ids(base, {"not": hot}) == {"b", "c"}
    assert ids(base, {"tier": ["潜力", "高价值"]}) == {"c"}


def test_scope_limits_results(base: Base, db_session: Any) -> None:
    from identity.service import Scope

    assert ids(base, {"all": []}, Scope(all=False, userids=frozenset({"lisi"}))) == {"b"}
    assert ids(base, {"tag": base.tags["A类"]}, Scope(all=False, userids=frozenset({"wangwu"}))) == set()


def test_facets_and_relation_tables_give_the_same_customers(base: Base, db_session: Any) -> None:
    """On PostgreSQL `compile_filter` reads `customer_facets`; `filter_condition` reads the relation tables
    (what SQLite uses). Every node, nested and within scopes, selects the same customers both ways."""
    from sqlalchemy import select

    from identity.service import Scope
    from crm.models import Customer, FollowUp
    from core.db import db, utcnow
    from tagging.segments.service import compile_filter, filter_condition, scope_condition

    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=base.customers["b"].id, userid="lisi", content="x",
                            created_at=utcnow() - dt.timedelta(days=3)))
    db_session.commit()
    t = base.tags
    many = [f"staff{i}" for i in range(12)] + ["lisi"]  # more than fit inline in the facets row
    trees = [
        {"all": []}, {"tag": t["A类"]}, {"tag": t["教育"]}, {"not": {"tag": t["A类"]}},
        {"wecom_tags": [t["A类"], t["B类"], t["教育"], t["金融"]]},
        {"any": [{"stage": [None]}, {"all": [{"tag": t["B类"]}, {"not": {"followed_by": ["wangwu"]}}]}]},
        {"followed_by": ["lisi"]}, {"followed_by": many}, {"state": ["expo", "web"]},
        {"added_after": "2026-03-01"}, {"added_before": "2026-02-15"}, {"not": {"added_before": "2026-02-15"}},
        {"no_followup_days": 2}, {"no_followup_days": 5}, {"stage": ["意向客户", None]},
        {"not": {"any": [{"state": "expo"}, {"tier": ["潜力"]}]}},
    ]
    scopes = [None, Scope(all=False, userids=frozenset({"lisi"})), Scope(all=False, userids=frozenset(many))]
    for tree in trees:
        for scope in scopes:
            relational = set(db.session.scalars(select(Customer.id).where(
                Customer.corp_id == TEST_CORP_ID, scope_condition(TEST_CORP_ID, scope, tree),
                filter_condition(TEST_CORP_ID, tree))))
            compiled = set(db.session.scalars(compile_filter(TEST_CORP_ID, tree, scope=scope)))
            assert compiled == relational, (tree, scope)


@pytest.mark.parametrize(("tree", "path", "words"), [
    ({"tag": "et_nope"}, "tag", "标签不存在"),
    ({"all": [{"stage": ["意向客户"]}, {"any": [{"tag": "et_etg_level_2"}]}]}, "all[1].any[0].tag", "已被删除"),
    ({"wecom_tags": ["et_etg_level_0", "et_nope"]}, "wecom_tags", "et_nope"),
    ({"stage": ["不存在"]}, "stage", "未知的客户阶段"),
    ({"colour": "red"}, "colour", "不认识的条件"),
    ({"tag": "x", "stage": ["y"]}, "filter", "只有一个键"),
    ({"any": []}, "any", "非空"),
    ({"not": {"no_followup_days": 0}}, "not.no_followup_days", "整数"),
    ({"added_after": "yesterday"}, "added_after", "日期格式"),
    ({"event": {"type": "page_view", "min_count": "3"}}, "event.min_count", "整数"),
    ({"event": {"type": "page_view", "colour": 1}}, "event", "colour"),
    ({"tier": ["土豪"]}, "tier", "未知的客户价值分层"),
    ("tag", "filter", "对象"),
])
def test_invalid_filters_name_the_node(base: Base, db_session: Any, tree: Any, path: str, words: str) -> None:
    from tagging.segments.service import FilterError, validate_filter

    with pytest.raises(FilterError) as caught:
        validate_filter(TEST_CORP_ID, tree)
    assert caught.value.path == path and words in str(caught.value)


def test_too_deep_is_refused(base: Base, db_session: Any) -> None:
    from tagging.segments.service import FilterError, validate_filter

    tree: Any = {"stage": ["意向客户"]}
    for _ in range(20):
        tree = {"not": tree}
    with pytest.raises(FilterError, match="嵌套太深"):
        validate_filter(TEST_CORP_ID, tree)


# ---------------------------------------------------------------- API


def test_preview_api_counts_and_samples_within_scope(base: Base, client: Any, db_session: Any) -> None:
    admin = token(db_session, "admin")
    answer = client.post("/api/v1/segments/preview", json={"filter": {"tag": base.tags["A类"]}}, headers=admin)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["count"] == 2
    assert {s["external_userid"] for s in body["sample"]} == {"wm_a", "wm_b"}
    sample_b = next(s for s in body["sample"] if s["external_userid"] == "wm_b")
    assert sample_b["name"] == "客户b" and sample_b["stage"] == "成交客户"
    assert sample_b["follow_userids"] == ["zhangsan", "lisi"]

    from identity.service import set_role

    set_role(TEST_CORP_ID, "laowang", "manager", granted_by="test")
    db_session.commit()
    manager = token(db_session, "manager", "laowang")  # sees his own and lisi's (his report, same dept) and zhangsan's (dept 1)
    body = client.post("/api/v1/segments/preview", json={"filter": {"all": []}}, headers=manager).get_json()
    assert body["count"] == 2 and {s["external_userid"] for s in body["sample"]} == {"wm_a", "wm_b"}
    b = next(s for s in body["sample"] if s["external_userid"] == "wm_b")
    assert b["follow_userids"] == ["zhangsan", "lisi"]


def test_preview_api_errors(base: Base, client: Any, db_session: Any) -> None:
    admin = token(db_session, "admin")
    bad = client.post("/api/v1/segments/preview", json={"filter": {"all": [{"tag": "et_nope"}]}}, headers=admin)
    assert bad.status_code == 400
    error = bad.get_json()["error"]
    assert error["code"] == "invalid_filter" and "et_nope" in error["message"]
    assert list(error["fields"]) == ["filter.all[0].tag"] and "et_nope" in error["fields"]["filter.all[0].tag"][0]
    missing = client.post("/api/v1/segments/preview", json={}, headers=admin)
    assert missing.status_code == 422 and missing.get_json()["error"]["fields"] == {"filter": ["必填"]}
    staff = token(db_session, "staff", "zhangsan")
    assert client.post("/api/v1/segments/preview", json={"filter": {"all": []}}, headers=staff).status_code == 403
    assert client.post("/api/v1/segments/preview", json={"filter": {"all": []}}).status_code == 401


def test_saved_segments_api(base: Base, client: Any, db_session: Any) -> None:
    marketer = token(db_session, "marketer")
    tree = {"wecom_tags": [base.tags["A类"], base.tags["教育"]]}
    made = client.post("/api/v1/segments", json={"name": "A类教育", "filter": tree}, headers=marketer)
    assert made.status_code == 201 and made.get_json()["count"] == 1
    seg_id = made.get_json()["id"]
    again = client.post("/api/v1/segments", json={"name": "A类教育", "filter": tree}, headers=marketer)
    assert again.status_code == 422 and "同名" in again.get_json()["error"]["message"]
    bad = client.post("/api/v1/segments", json={"name": "坏的", "filter": {"tag": "et_nope"}}, headers=marketer)
    assert bad.status_code == 400
    listed = client.get("/api/v1/segments", headers=marketer).get_json()["segments"]
    assert [(s["name"], s["count"], s["filter"]) for s in listed] == [("A类教育", 1, tree)]
    changed = client.put(f"/api/v1/segments/{seg_id}", json={"name": "A类", "filter": {"tag": base.tags["A类"]}},
                         headers=marketer)
    assert changed.status_code == 200 and changed.get_json()["count"] == 2
    assert client.get(f"/api/v1/segments/{seg_id}", headers=marketer).get_json()["name"] == "A类"
    assert client.delete(f"/api/v1/segments/{seg_id}", headers=marketer).status_code == 204
    assert client.get(f"/api/v1/segments/{seg_id}", headers=marketer).status_code == 404
    assert client.get("/api/v1/segments", headers=marketer).get_json()["segments"] == []
    # the name is free again after a delete
    assert client.post("/api/v1/segments", json={"name": "A类", "filter": tree}, headers=marketer).status_code == 201


def test_segment_whose_tag_was_deleted_shows_no_size(base: Base, client: Any, db_session: Any) -> None:
    from crm.models import Tag
    from core.db import utcnow

    marketer = token(db_session, "marketer")
    client.post("/api/v1/segments", json={"name": "金融", "filter": {"tag": base.tags["金融"]}}, headers=marketer)
    db_session.query(Tag).filter_by(tag_id=base.tags["金融"]).one().deleted_at = utcnow()
    db_session.commit()
    (row,) = client.get("/api/v1/segments", headers=marketer).get_json()["segments"]
    assert row["count"] is None


# ---------------------------------------------------------------- console


def sign_in(client: Any, db_session: Any, userid: str, role: str) -> str:
    from identity.service import set_role

    set_role(TEST_CORP_ID, userid, role, granted_by="test")
    db_session.commit()
    open_session(client, userid, csrf="csrf-test")
    return "csrf-test"


def test_form_and_filter_round_trip(base: Base, db_session: Any) -> None:
    from werkzeug.datastructures import MultiDict

    from tagging.segments.routes import filter_from_form, form_from_filter

    form = MultiDict([("tag", base.tags["A类"]), ("tag", base.tags["教育"]), ("exclude_tag", base.tags["金融"]),
                      ("stage", "意向客户"), ("stage", "__none__"), ("owner", "zhangsan"), ("state", "expo"),
                      ("tier", "潜力"), ("added_from", "2026-01-01"), ("added_to", "2026-01-31"),
                      ("no_followup_days", "7"), ("event_type", "page_view"), ("event_path", "/products/A"),
                      ("event_min_count", "3"), ("event_within_days", "3")])
    tree = filter_from_form(form)
    assert tree["all"][0] == {"wecom_tags": [base.tags["A类"], base.tags["教育"]]}
    assert {"added_before": "2026-02-01"} in tree["all"]  # the end day is included
    assert {"stage": ["意向客户", None]} in tree["all"]
    back = form_from_filter(tree)
    assert back is not None and back["added_to"] == "2026-01-31" and back["stage"] == ["意向客户", "__none__"]
    assert filter_from_form(back) == tree
    assert ids(base, tree) == set()  # a's follow-up check passes but a never viewed the page
    assert form_from_filter({"any": [{"tag": "x"}]}) is None


def test_console_builder_counts_and_saves(base: Base, client: Any, db_session: Any) -> None:
    csrf = sign_in(client, db_session, "laowang", "marketer")
    page = client.get("/console/segments/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "客户等级" in html and "A类" in html and "C类" not in html and "意向客户" in html and "{&#34;" not in html
    count = client.post("/console/segments/count", data={"tag": [base.tags["A类"]], "csrf_token": csrf},
                        headers={"Accept": "application/json"})
    assert count.status_code == 200 and count.get_json()["count"] == 2
    no_csrf = client.post("/console/segments/count", data={"tag": [base.tags["A类"]]},
                          headers={"Accept": "application/json"})
    assert no_csrf.status_code == 403
    preview = client.post("/console/segments/new", data={"tag": [base.tags["B类"]], "action": "preview",
                                                         "csrf_token": csrf, "name": ""})
    assert preview.status_code == 200 and "客户c" in preview.get_data(as_text=True)
    saved = client.post("/console/segments/new", data={"tag": [base.tags["B类"]], "stage": ["成交客户"],
                                                       "action": "save", "name": "B类成交", "csrf_token": csrf})
    assert saved.status_code == 302
    listing = client.get("/console/segments").get_data(as_text=True)
    assert "B类成交" in listing
    from tagging.segments.models import Segment

    segment = db_session.query(Segment).one()
    assert segment.filter == {"all": [{"wecom_tags": [base.tags["B类"]]}, {"stage": ["成交客户"]}]}
    edit = client.get(f"/console/segments/{segment.id}").get_data(as_text=True)
    assert 'value="B类成交"' in edit and f'value="{base.tags["B类"]}" checked' in edit


def test_console_segments_need_a_role(base: Base, client: Any, db_session: Any) -> None:
    sign_in(client, db_session, "zhangsan", "staff")
    assert client.get("/console/segments").status_code == 403


def test_scale_of_one_query(base: Base, db_session: Any) -> None:
    """More customers than the sample: the count is the full count, the sample is 10."""
    from identity.service import Principal
    from tagging.segments.service import preview

    for i in range(12):
        add_customer(db_session, base, f"x{i}", [("zhangsan", ["A类"], "2026-04-01T00:00:00", "active")])
    db_session.commit()
    principal = Principal(corp_id=TEST_CORP_ID, role="admin", userid=None, via="token", token_name="t")
    body = preview(principal, {"tag": base.tags["A类"]})
    assert body["count"] == 14 and len(body["sample"]) == 10


def test_preview_is_the_same_whether_the_probe_finds_all_matches_or_not(base: Base, db_session: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL previews probe for a few matching ids first; a filter matching more is counted and
    sampled separately. Both ways give the same count and the same newest customers."""
    from identity.service import Principal
    from tagging.segments import service as segments

    for i in range(12):
        add_customer(db_session, base, f"p{i}", [("zhangsan", ["A类"], "2026-04-01T00:00:00", "active")])
    db_session.commit()
    principal = Principal(corp_id=TEST_CORP_ID, role="admin", userid=None, via="token", token_name="t")
    tree = {"tag": base.tags["A类"]}
    whole = segments.preview(principal, tree)
    monkeypatch.setattr(segments, "PROBE", 3)
    assert segments.preview(principal, tree) == whole
    assert whole["count"] == 14 and [c["name"] for c in whole["sample"]][:2] == ["客户p11", "客户p10"]


def test_counts_from_id_sets_equal_the_row_by_row_count(base: Base, db_session: Any) -> None:
    """The fast count (relation-level sets, no customers scan) agrees with checking every customer."""
    from sqlalchemy import func, select

    from crm.models import Customer
    from core.db import db
    from tagging.segments.service import _id_set, _Ctx, _compile, count
    from core.db import utcnow

    t = base.tags
    trees = [
        {"tag": t["A类"]}, {"tag": t["教育"]},
        {"any": [{"tag": t["A类"]}, {"tag": t["金融"]}]},
        {"all": [{"tag": t["B类"]}, {"followed_by": ["lisi", "wangwu"]}]},
        {"wecom_tags": [t["A类"], t["B类"], t["教育"]]}, {"wecom_tags": [t["A类"], t["B类"]]},
        {"all": [{"added_after": "2026-02-01"}, {"added_before": "2026-03-03"}]},
        {"any": [{"state": ["expo"]}, {"all": [{"tag": t["B类"]}, {"followed_by": ["lisi"]}]}]},
        {"followed_by": ["lisi"]},  # d's relation with lisi is lost, b's is active
    ]
    for tree in trees:
        ctx = _Ctx(corp_id=TEST_CORP_ID, now=utcnow())
        cond = _compile(ctx, "", tree, 0)
        assert _id_set(ctx, tree) is not None, tree  # the fast path is taken for these
        row_by_row = db.session.scalar(select(func.count()).select_from(Customer).where(
            Customer.corp_id == TEST_CORP_ID, cond))
        assert count(TEST_CORP_ID, tree) == row_by_row == len(ids(base, tree)), tree
    # nodes that need the customer row keep the row-by-row path
    for tree in ({"stage": ["意向客户"]}, {"not": {"tag": t["A类"]}}, {"all": [{"tag": t["A类"]}, {"stage": [None]}]}):
        ctx = _Ctx(corp_id=TEST_CORP_ID, now=utcnow())
        _compile(ctx, "", tree, 0)
        assert _id_set(ctx, tree) is None
        assert count(TEST_CORP_ID, tree) == len(ids(base, tree))


def test_segments_page_charts_stages_for_what_the_viewer_may_see(base: Base, db_session: Any, client: Any) -> None:
    import html
    import json
    import re

    sign_in(client, db_session, "boss", "admin")
    page = client.get("/console/segments").get_data(as_text=True)
    found = re.search(r'<canvas id="chart-stages"[^>]*data-chart="([^"]*)"', page)
    assert found, "the stage chart is on the page"
    chart = json.loads(html.unescape(found.group(1)))
    counts = dict(zip(chart["labels"], chart["values"]))
    # a (意向客户), b (成交客户), c (no stage); d and gone have no active relation
    assert counts == {"潜在客户": 0, "意向客户": 1, "成交客户": 1, "忠诚客户": 0, "流失客户": 0, "未设置": 1}
    assert "vendor/chartjs/chart.umd.min.js" in page and "charts.js" in page
