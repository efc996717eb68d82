/* The customer page: one-tap tags (instant locally, sync state shown), stage, follow-up notes. */
(function () {
  "use strict";
  var root = document.getElementById("customer");
  if (!root) { return; }
  var ext = root.getAttribute("data-external-userid");
  var api = "/api/v1/customers/" + encodeURIComponent(ext);
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var syncEl = document.getElementById("tag-sync");
  var pollTimer = null;

  function request(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var e = new Error((data.error && data.error.message) || ("请求失败（" + r.status + "）"));
          e.status = r.status;
          throw e;
        }
        return data;
      });
    }, function () { throw new Error("网络连接失败，请检查网络后重试"); });
  }

  function toast(text) {
    var t = document.getElementById("toast");
    t.textContent = text; t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 3000);
  }

  function setSync(status, message) {
    if (!syncEl) { return; }
    syncEl.setAttribute("data-status", status || "");
    syncEl.textContent = message || "";
  }

  function pollSync(deadline) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(function () {
      request("GET", api).then(function (p) {
        var mine = p.follow_users.filter(function (f) { return f.is_me; })[0];
        var s = mine && mine.tag_sync;
        if (!s) { return; }
        setSync(s.status, s.message);
        if (s.status === "pending" && Date.now() < deadline) { pollSync(deadline); }
      }).catch(function () { if (Date.now() < deadline) { pollSync(deadline); } });
    }, 1000);
  }

  // Tags: flip the chip at once, then tell the server; undo the flip if it refuses.
  Array.prototype.forEach.call(document.querySelectorAll("button.chip[data-tag-id]"), function (chip) {
    chip.addEventListener("click", function () {
      var on = chip.getAttribute("aria-pressed") !== "true";
      var id = chip.getAttribute("data-tag-id");
      chip.setAttribute("aria-pressed", on ? "true" : "false");
      chip.classList.toggle("on", on);
      chip.classList.add("busy");
      setSync("saving", "正在保存…");  // "pending" only once the server has queued the change for WeCom
      request("POST", api + "/tags", on ? { add: [id], remove: [] } : { add: [], remove: [id] })
        .then(function (res) {
          chip.classList.remove("busy");
          setSync(res.sync.status, res.sync.message || (res.sync.status === "pending" ? "正在同步到企业微信…" : ""));
          if (res.sync.status === "pending") { pollSync(Date.now() + 30000); }
        })
        .catch(function (err) {
          chip.classList.remove("busy");
          chip.setAttribute("aria-pressed", on ? "false" : "true");
          chip.classList.toggle("on", !on);
          setSync("failed", "修改失败：" + err.message);
        });
    });
  });

  // Stage.
  var stage = document.getElementById("stage");
  if (stage) {
    var previous = stage.value;
    stage.addEventListener("change", function () {
      request("PUT", api + "/stage", { stage: stage.value || null })
        .then(function () { previous = stage.value; toast("阶段已更新"); })
        .catch(function (err) { stage.value = previous; toast(err.message); });
    });
  }

  // The timeline: follow-ups and behaviour events, newest first; older pages on request.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function chinaTime(iso, withTime) {
    var d = new Date(new Date(iso).getTime() + 8 * 3600 * 1000);
    var s = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return withTime ? s + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : s;
  }
  var KINDS = ["followup", "page_view", "link_click", "form", "order"];
  function span(text, cls) {
    var el = document.createElement("span");
    if (cls) { el.className = cls; }
    el.textContent = text;
    return el;
  }
  function timelineItem(item) {
    var li = document.createElement("li");
    li.className = "timeline__item timeline__item--" + (KINDS.indexOf(item.type) >= 0 ? item.type : "other");
    li.setAttribute("data-id", item.id);
    var meta = document.createElement("div");
    meta.className = "timeline__meta";
    meta.appendChild(span(item.title, "timeline__kind"));
    meta.appendChild(span(item.at ? chinaTime(item.at, true) : "—"));
    if (item.kind === "followup") {
      meta.appendChild(span(item.name || item.userid));
      if (item.next_at) { meta.appendChild(span("下次联系 " + chinaTime(item.next_at, false))); }
    }
    li.appendChild(meta);
    if (item.detail) {
      var body = document.createElement("div");
      body.className = "timeline__content";
      body.textContent = item.detail;
      li.appendChild(body);
    }
    return li;
  }
  var list = document.getElementById("timeline");
  var more = document.getElementById("timeline-more");
  if (more && list) {
    more.addEventListener("click", function () {
      var cursor = list.getAttribute("data-next-cursor");
      if (!cursor) { return; }
      more.disabled = true;
      request("GET", api + "/timeline?cursor=" + encodeURIComponent(cursor))
        .then(function (page) {
          page.items.forEach(function (item) {
            if (!list.querySelector('[data-id="' + item.id + '"]')) { list.appendChild(timelineItem(item)); }
          });
          list.setAttribute("data-next-cursor", page.next_cursor || "");
          more.hidden = !page.next_cursor;
        })
        .catch(function (err) { toast(err.message); })
        .then(function () { more.disabled = false; });
    });
  }
  var form = document.getElementById("followup-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var content = document.getElementById("followup-content");
      var next = document.getElementById("followup-next");
      var error = document.getElementById("followup-error");
      var button = document.getElementById("followup-submit");
      error.textContent = "";
      if (!content.value.trim()) { error.textContent = "请填写跟进内容"; return; }
      button.disabled = true;
      var sent = content.value;
      request("POST", api + "/followups", { content: sent, next_at: next.value || null })
        .then(function (f) {
          var li = timelineItem({ kind: "followup", id: "f" + f.id, type: "followup", title: "跟进记录", at: f.created_at,
                                  name: f.name, userid: f.userid, next_at: f.next_at, detail: f.content });
          var empty = document.getElementById("timeline-empty");
          if (empty) { empty.remove(); }
          list.insertBefore(li, list.firstChild);
          if (content.value === sent) { content.value = ""; next.value = ""; }
          toast("已保存");
        })
        .catch(function (err) { error.textContent = err.message; })
        .then(function () { button.disabled = false; });
    });
  }

  if (syncEl && syncEl.getAttribute("data-status") === "pending") { pollSync(Date.now() + 30000); }
})();
