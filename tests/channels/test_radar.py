"""The interaction radar: a tracked link opened twice by the same customer records two events, sends the
staff member one app message (at most one per customer and link per hour), and the rule tags the customer;
a forged or altered link records nothing and shows a Chinese page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from channels.models import LinkOpen
from tagging.lifecycle.models import BehaviorEvent
from tagging.rules.service import save_rule
from tests.channels.conftest import Corp, send_all
from tests.helpers import TEST_CORP_ID


def _events(db_session: Any) -> int:
    return int(db_session.scalar(select(func.count()).select_from(BehaviorEvent).where(BehaviorEvent.type == "link_open")))


def test_two_opens_two_events_one_message_and_the_rules_tag(app: Any, client: Any, db_session: Any, emu: Any,
                                                           corp: Corp, marketer: dict[str, str]) -> None:
    link = client.post("/api/v1/links", json={"title": "价目表", "url": "https://example.com/price.pdf"},
                       headers=marketer).get_json()
    assert link["event_path"] == f"/links/{link['id']}/"
    save_rule(TEST_CORP_ID, "test", {
        "name": "两次打开价目表", "trigger": "event", "trigger_params": {"type": "link_open"},
        "condition": {"event": {"type": "link_open", "path_prefix": link["event_path"], "min_count": 2,
                                "within_days": 3}},
        "actions": [{"add_tags": [corp.tags["高意向"]]}]})
    db_session.commit()
    ext = corp.ext(0)
    shared = client.post(f"/api/v1/links/{link['id']}/share", json={"external_userid": ext, "userid": "zhangsan"},
                         headers=marketer)
    assert shared.status_code == 200, shared.get_data(as_text=True)
    path = urlsplit(shared.get_json()["url"]).path
    assert path.startswith("/l/")

    first = client.get(path)
    assert first.status_code == 302 and first.headers["Location"] == "https://example.com/price.pdf"
    send_all(app)
    assert corp.tags["高意向"] not in emu.state.relation("zhangsan", ext).tags  # once is not enough
    assert client.get(path).status_code == 302
    send_all(app)

    assert _events(db_session) == 2
    assert db_session.scalar(select(func.count()).select_from(LinkOpen)) == 2
    messages = [m for m in emu.state.messages if "价目表" in str(m)]
    assert len(messages) == 1 and "zhangsan" in str(messages[0])
    assert corp.tags["高意向"] in emu.state.relation("zhangsan", ext).tags
    stats = client.get("/api/v1/links", headers=marketer).get_json()["links"][0]
    assert stats["opens"] == 2 and stats["customers"] == 1


def test_a_forged_link_records_nothing(app: Any, client: Any, db_session: Any, corp: Corp,
                                       marketer: dict[str, str]) -> None:
    link = client.post("/api/v1/links", json={"title": "文章", "url": "https://example.com/a"}, headers=marketer).get_json()
    url = client.post(f"/api/v1/links/{link['id']}/share", json={"external_userid": corp.ext(0), "userid": "zhangsan"},
                      headers=marketer).get_json()["url"]
    token = urlsplit(url).path[len("/l/"):]
    body, _, signature = token.rpartition(".")
    for forged in (body + "." + signature[::-1], body[:-2] + "xx." + signature, "nonsense", "a" * 700):
        page = client.get(f"/l/{forged}")
        assert page.status_code == 404
        html = page.get_data(as_text=True)
        assert "链接无效" in html and "<script" not in html
    assert _events(db_session) == 0
    assert db_session.scalar(select(func.count()).select_from(LinkOpen)) == 0


def test_links_refuse_bad_input_and_strangers(client: Any, db_session: Any, corp: Corp,
                                              marketer: dict[str, str]) -> None:
    bad = client.post("/api/v1/links", json={"title": "x", "url": "javascript:alert(1)"}, headers=marketer)
    assert bad.status_code == 422 and "url" in bad.get_json()["error"]["fields"]
    link = client.post("/api/v1/links", json={"title": "x", "url": "https://a.cn"}, headers=marketer).get_json()
    stranger = client.post(f"/api/v1/links/{link['id']}/share", json={"external_userid": corp.ext(0), "userid": "lisi"},
                           headers=marketer)
    assert stranger.status_code == 422  # lisi does not follow that customer
