"""The interaction radar from the sidebar, in Chromium: a salesperson in a chat sends a tracked link from
the customer page (WeCom's sendChatMessage, a test double at the SDK's URL), the customer opens the
signed link it carried, and the open is recorded for that customer; outside WeCom the link is copied."""

from __future__ import annotations

import json
from urllib.parse import urlsplit
from typing import Any

import pytest
from sqlalchemy import select

from tests.sidebar.conftest import Corp, corp  # noqa: F401  (fixtures)
from tests.tagging.conftest import token

pytestmark = pytest.mark.browser

SDK_PATH = "**/sidebar/static/vendor/wecom-jssdk/wecom.global.prod.js"

# Like @wecom/jssdk inside WeCom: register, then promise-returning APIs; sendChatMessage is recorded.
DOUBLE = """
window.ww = {
  env: {isWeCom: %(in_wecom)s, isWeChat: false},
  register: function (o) {
    var url = location.href.split('#')[0];
    this._ready = Promise.all([o.getConfigSignature(url), o.getAgentConfigSignature(url)]);
  },
  getContext: function () { return this._ready.then(function () { return {errMsg: 'getContext:ok', entry: 'single_chat_tools'}; }); },
  getCurExternalContact: function () { return Promise.resolve({errMsg: 'getCurExternalContact:ok', userId: %(user)s}); },
  sendChatMessage: function (m) {
    var sent = JSON.parse(sessionStorage.getItem('__sent') || '[]');
    sent.push(m);
    sessionStorage.setItem('__sent', JSON.stringify(sent));
    return Promise.resolve({errMsg: 'sendChatMessage:ok'});
  }
};
"""


def _open_customer(page: Any, live_server: Any, ext: str, in_wecom: bool) -> None:
    body = DOUBLE % {"user": json.dumps(ext), "in_wecom": "true" if in_wecom else "false"}
    page.route(SDK_PATH, lambda route: route.fulfill(status=200, content_type="text/javascript", body=body))
    page.goto(live_server.url + "/sidebar/")
    page.click("a:has-text('（zhangsan）')")  # the emulator's OAuth page: sign in as zhangsan
    page.wait_for_url(f"**/sidebar/customer/{ext}")


def test_a_link_sent_from_the_sidebar_records_the_customers_open(page: Any, live_server: Any, client: Any,
                                                                 db_session: Any, corp: Corp,  # noqa: F811
                                                                 page_errors: list[str]) -> None:
    from channels.models import LinkOpen

    marketer = token(db_session, "marketer", "lisi")
    made = client.post("/api/v1/links", json={"title": "2026 价格表", "url": live_server.url + "/livez"},
                       headers=marketer)
    assert made.status_code == 201, made.get_data(as_text=True)
    ext = corp.customers["xss"]
    _open_customer(page, live_server, ext, in_wecom=True)

    button = page.locator("#share-list button[aria-label='发送「2026 价格表」给客户']")
    button.click()
    page.wait_for_selector("#toast:has-text('已放入聊天输入框')")
    sent = json.loads(page.evaluate("sessionStorage.getItem('__sent')"))
    assert len(sent) == 1 and sent[0]["msgtype"] == "news" and sent[0]["news"]["title"] == "2026 价格表"
    url = sent[0]["news"]["link"]
    assert "/l/" in url

    page.goto(live_server.url + urlsplit(url).path)  # the customer opens it (SCRM_PUBLIC_URL is not this server)
    db_session.expire_all()
    opened = db_session.scalars(select(LinkOpen).where(LinkOpen.external_userid == ext)).all()
    assert len(opened) == 1 and opened[0].userid == "zhangsan"
    assert _real(page_errors) == []


def test_outside_wecom_the_link_is_copied_not_sent(page: Any, live_server: Any, client: Any, db_session: Any,
                                                   corp: Corp, page_errors: list[str]) -> None:  # noqa: F811
    marketer = token(db_session, "marketer", "lisi")
    client.post("/api/v1/links", json={"title": "产品手册", "url": "https://example.com/manual"}, headers=marketer)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    ext = corp.customers["xss"]
    _open_customer(page, live_server, ext, in_wecom=False)
    page.locator("#share-list button").first.click()
    page.wait_for_selector("#toast:has-text('专属链接')")
    assert page.evaluate("sessionStorage.getItem('__sent')") is None
    assert _real(page_errors) == []


def _real(errors: list[str]) -> list[str]:
    """The page's errors but the emulator's avatars, which are plain http (WeCom's are https)."""
    return [e for e in errors if "qlogo.cn" not in e]
