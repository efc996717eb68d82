// Bar charts for console pages: <canvas data-chart='{"labels": [...], "values": [...], "label": "..."}'>.
// A file of its own (the pages' CSP allows scripts from this server only), drawn with the vendored Chart.js.
(function () {
  "use strict";
  var canvases = document.querySelectorAll("canvas[data-chart]");
  Array.prototype.forEach.call(canvases, function (canvas) {
    var spec;
    try { spec = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    if (!window.Chart || !spec || !spec.labels || !spec.labels.length) { return; }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: [{ label: spec.label || "", data: spec.values,
                                                backgroundColor: "#07c160", borderRadius: 3 }] },
      options: { indexAxis: spec.horizontal ? "y" : "x", animation: false, responsive: true,
                 maintainAspectRatio: false, plugins: { legend: { display: false } },
                 scales: { x: { beginAtZero: true }, y: { beginAtZero: true } } }
    });
  });
})();
