// The customer page: older pages of the timeline (follow-ups and behaviour events), from the customer API.
(function () {
  "use strict";
  var root = document.getElementById("customer");
  var list = document.getElementById("timeline");
  var more = document.getElementById("timeline-more");
  var error = document.getElementById("timeline-error");
  if (!root || !list || !more) { return; }
  var api = "/api/v1/customers/" + encodeURIComponent(root.getAttribute("data-external-userid")) + "/timeline";
  var KINDS = ["followup", "page_view", "link_click", "form", "order"];
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function chinaTime(iso, withTime) {
    var d = new Date(new Date(iso).getTime() + 8 * 3600 * 1000);
    var s = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return withTime ? s + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : s;
  }
  function span(text, cls) {
    var el = document.createElement("span");
    if (cls) { el.className = cls; }
    el.textContent = text;
    return el;
  }
  function item(it) {
    var li = document.createElement("li");
    li.className = "k-" + (KINDS.indexOf(it.type) >= 0 ? it.type : "other");
    li.setAttribute("data-id", it.id);
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.appendChild(span(it.title, "what"));
    meta.appendChild(span(it.at ? chinaTime(it.at, true) : "—"));
    if (it.kind === "followup") {
      meta.appendChild(span(it.name || it.userid));
      if (it.next_at) { meta.appendChild(span("下次联系 " + chinaTime(it.next_at, false))); }
    }
    li.appendChild(meta);
    if (it.detail) {
      var body = document.createElement("div");
      body.className = "body";
      body.textContent = it.detail;
      li.appendChild(body);
    }
    return li;
  }
  more.addEventListener("click", function () {
    var cursor = list.getAttribute("data-next-cursor");
    if (!cursor) { return; }
    more.disabled = true;
    error.textContent = "";
    fetch(api + "?cursor=" + encodeURIComponent(cursor), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error((body.error && body.error.message) || "加载失败，请稍后重试"); }
          return body;
        });
      })
      .then(function (page) {
        page.items.forEach(function (it) {
          if (!list.querySelector('[data-id="' + it.id + '"]')) { list.appendChild(item(it)); }
        });
        list.setAttribute("data-next-cursor", page.next_cursor || "");
        more.hidden = !page.next_cursor;
      })
      .catch(function (err) { error.textContent = err.message || "加载失败，请稍后重试"; })
      .then(function () { more.disabled = false; });
  });
})();
