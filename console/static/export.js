// An export's progress page: poll the status until the file is ready, then show the download.
(function () {
  "use strict";
  var box = document.getElementById("export");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  function fmt(n) { return Number(n).toLocaleString("zh-CN"); }
  function show(job) {
    document.getElementById("export-progress").value = job.percent;
    document.getElementById("export-figure").textContent =
      job.percent + "%：已导出 " + fmt(job.done) + " / " + fmt(job.total) + " 位客户";
    var status = document.getElementById("export-status");
    status.textContent = job.status_text;
    status.className = "badge " + (job.status === "done" ? "badge-ok" : job.status === "failed" ? "badge-danger" : "badge-info");
    document.getElementById("export-error").textContent = job.error || "";
    document.getElementById("export-ready").hidden = job.status !== "done";
    document.getElementById("export-wait").hidden = job.status === "done" || job.status === "failed";
    box.setAttribute("data-status", job.status);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (job) { show(job); }
        if (!job || (job.status !== "done" && job.status !== "failed")) { setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  if (box.getAttribute("data-status") !== "done" && box.getAttribute("data-status") !== "failed") { setTimeout(poll, 800); }
})();
