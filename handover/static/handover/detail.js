// A handover job's page: follow the progress while the job runs (reload when something changed), and show the
// colleagues to reassign to when "改派" is chosen.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (box && box.getAttribute("data-status") === "running") {
    var url = box.getAttribute("data-url");
    var last = null;
    var timer = setInterval(function () {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          var bar = document.getElementById("progress-bar");
          var pct = document.getElementById("progress-percent");
          if (bar) { bar.value = data.progress.percent; }
          if (pct) { pct.textContent = data.progress.percent + "%"; }
          var key = JSON.stringify([data.status, data.customers, data.chats]);
          if (last !== null && key !== last) { clearInterval(timer); window.location.reload(); }
          last = key;
        })
        .catch(function () { /* offline for a moment: try again at the next tick */ });
    }, 5000);
  }
  var form = document.getElementById("retry-form");
  if (form) {
    var to = document.getElementById("reassign-to");
    var button = document.getElementById("retry-button");
    var label = button ? button.textContent : "";
    Array.prototype.forEach.call(form.querySelectorAll("input[name=mode]"), function (input) {
      input.addEventListener("change", function () {
        var reassign = form.querySelector("input[name=mode][value=reassign]").checked;
        if (to) { to.hidden = !reassign; }
        if (button) { button.textContent = reassign ? label.replace("重新提交", "改派") : label; }
      });
    });
  }
})();
