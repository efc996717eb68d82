"""A channel's welcome message carries its links: they reach the customer with the text, within WeCom's
20 s (nothing to upload); links alone go with the corp's default text; a bad link is refused by name."""

from __future__ import annotations

from typing import Any

from tests.channels.conftest import Corp, deliver_add, send_all

LINK = {"title": "2026 新品目录", "url": "https://example.com/catalog", "desc": "扫码客户专享价"}


def _welcome(emu: Any, ext: str) -> dict[str, Any]:
    (sent,) = [m for m in emu.state.welcome_messages if m["external_userid"] == ext]
    return dict(sent)


def test_the_links_go_with_the_welcome_text(app: Any, client: Any, emu: Any, corp: Corp,
                                            marketer: dict[str, str]) -> None:
    answer = client.post("/api/v1/channels", json={"name": "官网", "users": ["zhangsan"], "welcome_text": "欢迎{customer_name}",
                                                   "welcome_attachments": [LINK]}, headers=marketer)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    created = answer.get_json()
    assert created["welcome_attachments"] == [LINK]
    send_all(app)
    ext = deliver_add(emu, "zhangsan", "赵女士", created["state"])
    send_all(app)
    sent = _welcome(emu, ext)
    assert "欢迎赵女士" in str(sent["text"])
    assert sent["attachments"] == [{"msgtype": "link", "link": LINK}]


def test_links_alone_go_with_the_default_text(app: Any, client: Any, emu: Any, corp: Corp,
                                              marketer: dict[str, str]) -> None:
    created = client.post("/api/v1/channels", json={"name": "门店", "users": ["lisi"], "welcome_attachments": [LINK]},
                          headers=marketer).get_json()
    send_all(app)
    ext = deliver_add(emu, "lisi", "钱先生", created["state"])
    send_all(app)
    sent = _welcome(emu, ext)
    assert "我是李四" in str(sent["text"]) and len(sent["attachments"]) == 1


def test_a_bad_link_is_refused_by_name(client: Any, corp: Corp, marketer: dict[str, str]) -> None:
    for links in ([{"title": "目录", "url": "javascript:alert(1)"}], [{"title": "", "url": "https://a.cn"}],
                  [LINK] * 10):
        answer = client.post("/api/v1/channels", json={"name": "x", "users": ["zhangsan"], "welcome_attachments": links},
                             headers=marketer)
        assert answer.status_code == 422, answer.get_data(as_text=True)
        fields = answer.get_json()["error"]["fields"]
        assert any(f.startswith("welcome_attachments") for f in fields), fields
