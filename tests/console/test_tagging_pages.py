"""Tagging's console pages read well: the rule editor takes fields (never JSON) and lists rules in words;
the bulk page is a two-column add/remove picker over a segment, the list's filters or pasted ids."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from tests.console.conftest import Corp, visible_text
from tests.helpers import TEST_CORP_ID, sign_in


def test_a_rule_from_the_guided_editor_reads_as_a_sentence(client: Any, corp: Corp, db_session: Any) -> None:
    from crm.service import save_state_label
    from tagging.rules.models import TagRule

    save_state_label(TEST_CORP_ID, "expo", "2026 展会")  # the channel's name is what the sentence shows
    db_session.commit()
    sign_in(client, "xiaomei")
    form = MultiDict([("csrf_token", "t"), ("name", "展会客户"), ("trigger", "customer_added"),
                      ("param_state", "expo"), ("tag", corp.tags["教育"]), ("stage", "意向客户"),
                      ("add", corp.tags["A类"]), ("set_stage", "意向客户"), ("notify", "{customer_name} 来自展会"),
                      ("enabled_field", "1"), ("enabled", "1")])
    answer = client.post("/console/rules/", data=form)
    assert answer.status_code == 302
    rule = db_session.query(TagRule).one()
    assert rule.trigger_params == {"state": "expo"} and rule.enabled
    assert rule.condition == {"all": [{"wecom_tags": [corp.tags["教育"]]}, {"stage": ["意向客户"]}]}
    assert rule.actions == [{"add_tags": [corp.tags["A类"]]}, {"set_stage": "意向客户"},
                            {"notify": "{customer_name} 来自展会"}]
    text = visible_text(client.get("/console/rules/").get_data(as_text=True))
    assert "客户从「2026 展会」渠道添加时，且带有标签 教育，阶段为 意向客户 → 打标签 A类；设为阶段「意向客户」" in text
    assert "{" not in text.split("自动打标签")[-1].split("新建规则")[0].replace("{customer_name}", "")  # no JSON


def test_edit_pause_and_delete_a_rule(client: Any, corp: Corp, db_session: Any) -> None:
    from tagging.rules.models import TagRule
    from tagging.rules.service import save_rule

    rule = save_rule(TEST_CORP_ID, "xiaomei", {"name": "超时提醒", "trigger": "inactivity", "trigger_params": {"days": 7},
                                               "actions": [{"add_tags": [corp.tags["B类"]]}]})
    db_session.commit()
    sign_in(client, "xiaomei")
    editor = client.get(f"/console/rules/{rule.id}").get_data(as_text=True)
    assert 'value="7"' in editor and "编辑规则「超时提醒」" in editor
    answer = client.post(f"/console/rules/{rule.id}", data=MultiDict([
        ("csrf_token", "t"), ("name", "超时提醒"), ("trigger", "inactivity"), ("param_days", "14"),
        ("remove", corp.tags["B类"]), ("enabled_field", "1")]))
    assert answer.status_code == 302
    db_session.refresh(rule)
    assert rule.trigger_params == {"days": 14} and rule.actions == [{"remove_tags": [corp.tags["B类"]]}]
    assert not rule.enabled  # the box was left unticked
    assert "客户超过 14 天未跟进时（每天检查） → 移除标签 B类" in visible_text(
        client.get("/console/rules/").get_data(as_text=True))
    client.post(f"/console/rules/{rule.id}/toggle", data={"csrf_token": "t"})
    db_session.refresh(rule)
    assert rule.enabled
    client.post(f"/console/rules/{rule.id}/delete", data={"csrf_token": "t"})
    db_session.refresh(rule)
    assert rule.deleted_at is not None and db_session.query(TagRule).filter(TagRule.deleted_at.is_(None)).count() == 0


def test_a_refused_rule_keeps_what_was_typed_and_says_why(client: Any, corp: Corp, db_session: Any) -> None:
    sign_in(client, "xiaomei")
    answer = client.post("/console/rules/", data=MultiDict([
        ("csrf_token", "t"), ("name", "两头都选"), ("trigger", "followup_written"), ("add", corp.tags["A类"]),
        ("remove", corp.tags["A类"]), ("enabled_field", "1"), ("enabled", "1")]))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "同一个标签不能既添加又移除" in html and 'value="两头都选"' in html
    nothing = client.post("/console/rules/", data={"csrf_token": "t", "name": "空规则", "trigger": "followup_written"})
    assert "至少需要一个动作" in nothing.get_data(as_text=True)


def test_bulk_page_is_a_two_column_picker_with_the_audience(client: Any, corp: Corp, db_session: Any,
                                                            app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tagging.bulk.models import TagJob
    from tagging.segments.service import save_segment

    monkeypatch.setitem(app.config, "TAGGING_JOBS_INLINE", False)
    segment = save_segment(TEST_CORP_ID, "A类客户", {"all": [{"wecom_tags": [corp.tags["A类"]]}]}, "xiaomei")
    db_session.commit()
    sign_in(client, "xiaomei")
    html = client.get("/console/tags/bulk").get_data(as_text=True)
    assert "添加这些标签" in html and "移除这些标签" in html and "A类客户（2 位）" in html
    assert "external_userid" not in visible_text(html)
    both = client.post("/console/tags/bulk", data=MultiDict([
        ("csrf_token", "t"), ("audience", "segment"), ("segment_id", str(segment.id)),
        ("add", corp.tags["B类"]), ("remove", corp.tags["B类"])]))
    assert "同一个标签不能同时添加和移除" in both.get_data(as_text=True)
    started = client.post("/console/tags/bulk", data=MultiDict([
        ("csrf_token", "t"), ("audience", "segment"), ("segment_id", str(segment.id)), ("add", corp.tags["B类"])]))
    job = db_session.query(TagJob).one()
    assert started.status_code == 302 and job.total == 2
    page = visible_text(client.get(f"/console/tags/jobs/{job.id}").get_data(as_text=True))
    assert "添加 B类" in page and "0 / 2 位客户" in page
    # from the customer list: its filters come along
    carried = client.get("/console/tags/bulk", query_string={"tag": corp.tags["A类"], "state": "expo"})
    assert "客户列表当前的筛选结果" in carried.get_data(as_text=True)
    counted = client.post("/console/tags/bulk/count", data={"external_userids": "wm-chen\nwm-zhou\nwm-nobody"},
                          headers={"X-CSRF-Token": "t"})
    assert counted.get_json() == {"given": 3, "found": 2}


def test_drift_and_catalog_pages_speak_names(client: Any, corp: Corp, db_session: Any) -> None:
    from crm.service import audit
    from tagging.drift.models import DriftReport

    db_session.add(DriftReport(corp_id=TEST_CORP_ID, counts={"differences": 1, "relations_checked": 7},
                               differences=[{"kind": "relation_tags", "external_userid": corp.customers["zhou"],
                                             "userid": "lisi", "only_local": [corp.tags["A类"]], "only_wecom": []}]))
    audit(TEST_CORP_ID, "wecom", "tags.change_failed", "relation", "1",
          {"userid": "zhangsan", "external_userid": corp.customers["chen"], "message": "标签已在企业微信中被删除"})
    db_session.commit()
    sign_in(client, "boss")
    drift = visible_text(client.get("/console/tags/drift").get_data(as_text=True))
    assert "李四 的客户「周杰」标签不同：只在本地有 A类" in drift and "relation_tags" not in drift
    catalog = visible_text(client.get("/console/tags/").get_data(as_text=True))
    assert "张三" in catalog and "陈晓明" in catalog and "zhangsan" not in catalog
