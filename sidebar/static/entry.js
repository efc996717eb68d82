/* The sidebar entry: register WeCom's JS-SDK, ask which chat this page was opened from, move on. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("sidebar-config").textContent);

  function show(title, desc) {
    document.getElementById("status-title").textContent = title;
    document.getElementById("status-desc").textContent = desc || "";
    var icon = document.querySelector("#status .weui-msg__icon-area");
    if (icon) { icon.hidden = true; }
  }

  function signer(kind) {
    return function (url) {
      var q = "?kind=" + kind + "&url=" + encodeURIComponent(url.split("#")[0]);
      return fetch(cfg.signatureUrl + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) { throw new Error("signature " + r.status); }
          return r.json();
        });
    };
  }

  function go(template, id) {
    window.location.replace(template.replace(/_$/, encodeURIComponent(id)));
  }

  if (!window.ww || typeof window.ww.register !== "function") {
    show("无法加载企业微信接口", "请在企业微信客户端的聊天工具栏中打开此页面。");
    return;
  }
  var ww = window.ww;
  ww.register({
    corpId: cfg.corpId,
    agentId: cfg.agentId,
    jsApiList: ["getContext", "getCurExternalContact", "getCurExternalChat"],
    getConfigSignature: signer("config"),
    getAgentConfigSignature: signer("agent")
  });

  ww.getContext().then(function (ctx) {
    var entry = ctx && ctx.entry;
    if (entry === "single_chat_tools" || entry === "contact_profile") {
      return ww.getCurExternalContact().then(function (res) { go(cfg.customerUrl, res.userId); });
    }
    if (entry === "group_chat_tools") {
      return ww.getCurExternalChat().then(function (res) { go(cfg.chatUrl, res.chatId); });
    }
    show("没有正在进行的客户聊天", "请在与客户的单聊或客户群的聊天工具栏中打开此页面。");
  }).catch(function (err) {
    var msg = (err && (err.errMsg || err.err_msg || err.message)) || "";
    if (/signature/.test(msg)) {
      show("企业微信暂时无法访问", "无法完成接口签名，请稍后重试。");
    } else {
      show("无法识别当前聊天", "请确认企业微信已是最新版本，并在客户聊天的工具栏中打开。" + (msg ? "（" + msg + "）" : ""));
    }
  });
})();
