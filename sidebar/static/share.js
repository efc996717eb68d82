/* The customer page's "发送素材": the corp's tracked links (the interaction radar). Sending one asks the
 * server for this customer's signed link, then puts it in the chat with WeCom's sendChatMessage; where
 * the JS-SDK cannot send (an ordinary browser), the link is copied for pasting instead. */
(function () {
  "use strict";
  var root = document.getElementById("customer");
  var section = document.getElementById("share");
  var list = document.getElementById("share-list");
  var cfgEl = document.getElementById("sidebar-config");
  if (!root || !section || !list) { return; }
  var ext = root.getAttribute("data-external-userid");
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var cfg = cfgEl ? JSON.parse(cfgEl.textContent) : {};
  var ww = window.ww && typeof window.ww.register === "function" ? window.ww : null;
  /* The real SDK can send only inside WeCom (elsewhere its calls never settle); the demo stand-in always can. */
  var canSend = !!(ww && typeof ww.sendChatMessage === "function" && (cfg.demo || (ww.env && ww.env.isWeCom)));

  function signer(kind) {
    return function (url) {
      var q = "?kind=" + kind + "&url=" + encodeURIComponent(url.split("#")[0]);
      return fetch(cfg.signatureUrl + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("signature " + r.status); } return r.json(); });
    };
  }
  if (canSend) {
    ww.register({ corpId: cfg.corpId, agentId: cfg.agentId, jsApiList: ["sendChatMessage"],
                  getConfigSignature: signer("config"), getAgentConfigSignature: signer("agent") });
  }

  function toast(text) {
    var t = document.getElementById("toast");
    t.textContent = text; t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 3000);
  }

  function call(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { throw new Error((data.error && data.error.message) || ("请求失败（" + r.status + "）")); }
        return data;
      });
    }, function () { throw new Error("网络连接失败，请检查网络后重试"); });
  }

  function copy(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () { return false; });
    }
    return Promise.resolve(false);
  }

  function send(link, button) {
    button.disabled = true;
    call("POST", "/api/v1/links/" + link.id + "/share", { external_userid: ext })
      .then(function (answer) {
        var news = { link: answer.url, title: link.title, desc: "点击查看", imgUrl: "" };
        if (canSend) {
          return ww.sendChatMessage({ msgtype: "news", enterChat: true, news: news })
            .then(function () { toast("已放入聊天输入框，确认后发送给客户"); });
        }
        return copy(answer.url).then(function (copied) {
          toast(copied ? "已复制专属链接，粘贴到聊天中发送" : "专属链接：" + answer.url);
        });
      })
      .catch(function (err) { toast((err && (err.message || err.errMsg)) || "发送失败，请重试"); })
      .then(function () { button.disabled = false; });
  }

  call("GET", "/api/v1/links").then(function (data) {
    var links = (data.links || []).slice(0, 20);
    if (!links.length) { return; }
    links.forEach(function (link) {
      var row = document.createElement("div");
      row.className = "weui-cell";
      var body = document.createElement("div");
      body.className = "weui-cell__bd";
      body.textContent = link.title;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "weui-btn weui-btn_mini weui-btn_default";
      button.textContent = "发送";
      button.setAttribute("aria-label", "发送「" + link.title + "」给客户");
      button.addEventListener("click", function () { send(link, button); });
      row.appendChild(body);
      row.appendChild(button);
      list.appendChild(row);
    });
    section.hidden = false;
  }).catch(function () { /* no links for this person: the section stays hidden */ });
})();
