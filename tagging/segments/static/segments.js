// The segment builder's live count: on every change, post the form to the count endpoint (debounced)
// and show the size and a sample. The form works without this script (the "刷新人数" button).
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  if (!form) { return; }
  var countEl = document.getElementById("segment-count");
  var errorEl = document.getElementById("segment-error");
  var sampleEl = document.getElementById("segment-sample");
  var timer = null;
  var seq = 0;

  function render(body) {
    countEl.textContent = String(body.count);
    errorEl.textContent = "";
    sampleEl.textContent = "";
    (body.sample || []).forEach(function (c) {
      var li = document.createElement("li");
      li.textContent = c.name || c.external_userid;
      if (c.stage) {
        var span = document.createElement("span");
        span.className = "muted";
        span.textContent = " " + c.stage;
        li.appendChild(span);
      }
      sampleEl.appendChild(li);
    });
  }

  function refresh() {
    var mine = ++seq;
    var data = new FormData(form);
    data.delete("name");
    data.delete("description");
    fetch(form.dataset.countUrl, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRF-Token": data.get("csrf_token")}
    }).then(function (resp) {
      return resp.json().then(function (body) { return {ok: resp.ok, body: body}; });
    }).then(function (answer) {
      if (mine !== seq) { return; }
      if (answer.ok) { render(answer.body); }
      else { countEl.textContent = "—"; errorEl.textContent = (answer.body.error || {}).message || "无法计算人数"; }
    }).catch(function () {
      if (mine === seq) { errorEl.textContent = "网络错误，请稍后重试"; }
    });
  }

  function schedule(event) {
    if (event && event.target && (event.target.name === "name" || event.target.name === "description")) { return; }
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }

  form.addEventListener("change", schedule);
  form.addEventListener("input", schedule);
  refresh();
}());
