"""The sidebar in Debian's Chromium: real OAuth redirect through the emulator, WeCom's JS-SDK replaced
by a test double at the page boundary (the `wecom.global.prod.js` request), the worker sending tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sidebar.conftest import XSS_NAME, Corp, corp  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

SDK_PATH = "**/sidebar/static/vendor/wecom-jssdk/wecom.global.prod.js"

# The pages' CSP forbids eval, so the test waits with selectors, never with wait_for_function strings.
# The double behaves like @wecom/jssdk's global build: ww.register(...) then promise-returning APIs.
# It asks the page's signature callbacks for both signatures and records what it got.
DOUBLE = """
window.ww = {
  register: function (o) {
    var url = location.href.split('#')[0];
    var seen = {url: url, corpId: o.corpId, agentId: o.agentId, jsApiList: o.jsApiList};
    this._ready = Promise.all([o.getConfigSignature(url), o.getAgentConfigSignature(url)])
      .then(function (s) { seen.signatures = s; sessionStorage.setItem('__ww', JSON.stringify(seen)); });
  },
  getContext: function () { return this._ready.then(function () { return {errMsg: 'getContext:ok', entry: %(entry)s}; }); },
  getCurExternalContact: function () { return Promise.resolve({errMsg: 'getCurExternalContact:ok', userId: %(user)s}); },
  getCurExternalChat: function () { return Promise.resolve({errMsg: 'getCurExternalChat:ok', chatId: %(chat)s}); }
};
"""


def _install_double(page: Any, entry: str, user: str = "", chat: str = "") -> None:
    body = DOUBLE % {"entry": json.dumps(entry), "user": json.dumps(user), "chat": json.dumps(chat)}
    page.route(SDK_PATH, lambda route: route.fulfill(status=200, content_type="text/javascript", body=body))


def _sign_in(page: Any, live_server: Any, userid: str) -> None:
    """/sidebar/ → our /auth/wecom/start → the emulator's authorize page (pick a member) → callback."""
    page.goto(live_server.url + "/sidebar/")
    assert "/connect/oauth2/authorize" in page.url  # the emulator's member list
    page.click(f"a:has-text('（{userid}）')")


def _drain_outbox(app: Any) -> None:
    """Run the real worker until the outbox has nothing left to send."""
    from crm import worker  # the project's worker (crm/worker.py)

    with app.app_context():
        worker.drain(app)


def test_sidebar_end_to_end(page: Any, live_server: Any, emu: Any, corp: Corp, app: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ext = corp.customers["xss"]
    _install_double(page, "single_chat_tools", user=ext)

    _sign_in(page, live_server, "zhangsan")
    page.wait_for_url(f"**/sidebar/customer/{ext}")
    assert emu.call_count("/cgi-bin/auth/getuserinfo") == 1

    # the customer's name is text, not markup
    name = page.locator("#customer-name")
    assert XSS_NAME in name.inner_text()
    assert name.locator("img").count() == 0
    assert dialogs == []

    # add a tag: instant locally, then sent by the worker to WeCom (the emulator)
    chip = page.locator(f"button.chip[data-tag-id='{corp.tags['A类']}']")
    chip.click()
    assert chip.get_attribute("aria-pressed") == "true"
    page.wait_for_selector("#tag-sync[data-status='pending']")
    _drain_outbox(app)
    page.wait_for_selector("#tag-sync[data-status='done']", timeout=10000)
    assert corp.tags["A类"] in emu.state.relation_tags("zhangsan", ext)
    assert any(c[1] == "/cgi-bin/externalcontact/mark_tag" and c[3]["add_tag"] == [corp.tags["A类"]]
               for c in emu.calls)

    # and remove it again
    chip.click()
    assert chip.get_attribute("aria-pressed") == "false"
    page.wait_for_selector("#tag-sync[data-status='pending']")
    _drain_outbox(app)
    page.wait_for_selector("#tag-sync[data-status='done']", timeout=10000)
    assert corp.tags["A类"] not in emu.state.relation_tags("zhangsan", ext)
    assert emu.call_count("/cgi-bin/externalcontact/mark_tag") == 2

    # a follow-up goes to the top of the timeline, and stays there after a reload
    page.fill("#followup-content", "第一次电话沟通，对A产品感兴趣")
    page.click("#followup-submit")
    page.locator("#timeline .timeline__item").first.wait_for()
    page.fill("#followup-content", "发送报价单 <script>alert(2)</script>")
    page.fill("#followup-next", "2026-12-01")
    page.click("#followup-submit")
    page.locator("#timeline .timeline__item").nth(1).wait_for()
    top = page.locator("#timeline .timeline__item").first
    assert "发送报价单 <script>alert(2)</script>" in top.inner_text()
    assert "下次联系 2026-12-01" in top.inner_text()
    page.reload()
    assert "发送报价单" in page.locator("#timeline .timeline__item").first.inner_text()
    assert dialogs == []

    # a customer zhangsan does not follow is a 404 page
    answer = page.goto(f"{live_server.url}/sidebar/customer/{corp.customers['other']}")
    assert answer.status == 404
    assert "找不到该客户" in page.content()


def test_entry_page_registers_with_real_signatures_and_opens_the_group_chat(
        page: Any, live_server: Any, emu: Any, corp: Corp) -> None:
    from tests.helpers import TEST_CORP_ID
    from wecom import jssdk
    from wecom.client import agent_client, contact_client

    _install_double(page, "group_chat_tools", chat=corp.chat_id)
    _sign_in(page, live_server, "zhangsan")
    page.wait_for_url(f"**/sidebar/chat/{corp.chat_id}")
    assert "华东客户群" in page.locator("h1").inner_text()
    assert page.locator("#members .badge", has_text="客户").count() == 2
    seen = json.loads(page.evaluate("sessionStorage.getItem('__ww')"))
    assert seen["corpId"] == TEST_CORP_ID and str(seen["agentId"]) == "1000002"
    assert seen["url"] == live_server.url + "/sidebar/"
    config_sig, agent_sig = seen["signatures"]
    for sig, ticket in ((config_sig, contact_client().get_jsapi_ticket()), (agent_sig, agent_client().get_agent_ticket())):
        assert sig["signature"] == jssdk.sign(ticket, sig["nonceStr"], sig["timestamp"], seen["url"])


def test_no_chat_context_says_so(page: Any, live_server: Any, emu: Any, corp: Corp) -> None:
    _install_double(page, "normal")
    _sign_in(page, live_server, "zhangsan")
    page.wait_for_selector("#status-title:has-text('没有正在进行的客户聊天')")
    assert "/sidebar/" in page.url
