/* Demo only: a stand-in for WeCom's JS-SDK (`ww`) so the sidebar opens in an ordinary browser.
 * Served by /sidebar/demo/ww-standin.js only when SCRM_DEMO is on (the emulator plays WeCom).
 * It still asks the server for both signatures, so the signing path runs in the demo too. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("sidebar-config").textContent);
  var ctx = cfg.demo || {};
  var ready = null;
  window.ww = {
    register: function (options) {
      var url = window.location.href.split("#")[0];
      ready = Promise.all([options.getConfigSignature(url), options.getAgentConfigSignature(url)]);
    },
    getContext: function () {
      return ready.then(function () { return { errMsg: "getContext:ok", entry: ctx.entry || "normal" }; });
    },
    getCurExternalContact: function () {
      return Promise.resolve({ errMsg: "getCurExternalContact:ok", userId: ctx.userId });
    },
    getCurExternalChat: function () {
      return Promise.resolve({ errMsg: "getCurExternalChat:ok", chatId: ctx.chatId });
    },
    sendChatMessage: function (message) {
      /* WeCom would put the message in the chat's input box; the demo keeps it where a test can see it. */
      return ready.then(function () {
        (window.__demoSentMessages = window.__demoSentMessages || []).push(message);
        return { errMsg: "sendChatMessage:ok" };
      });
    }
  };
})();
