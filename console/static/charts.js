// Charts for console pages, drawn with the vendored Chart.js from a data attribute (the pages' CSP allows
// scripts from this server only, so there is no inline script):
//   <canvas data-chart='{"labels": [...], "values": [...], "label": "客户数", "horizontal": false}'>
//   <canvas data-chart='{"labels": [...], "datasets": [{"label": "新增", "values": [...], "color": "#07c160",
//                                                      "type": "line"}], "legend": true}'>
// Options: "horizontal" (bars along x), "stacked" (the datasets' bars on top of each other), "colors" (one
// color per bar of a single dataset); a label may be a list of lines.
(function () {
  "use strict";
  var PALETTE = ["#07c160", "#e5484d", "#1a6fd6", "#fa8c16", "#722ed1", "#13c2c2"];
  if (window.Chart) {
    window.Chart.defaults.font.family = '-apple-system, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif';
    window.Chart.defaults.color = "#4e5969";
  }
  function datasets(spec) {
    var list = spec.datasets || [{ label: spec.label || "", values: spec.values, colors: spec.colors }];
    return list.map(function (d, i) {
      var color = d.colors || d.color || PALETTE[i % PALETTE.length];
      var line = d.type === "line";
      return { type: d.type || "bar", label: d.label || "", data: d.values, backgroundColor: color, borderColor: color,
               borderWidth: line ? 2 : 0, borderRadius: line ? 0 : 3, pointRadius: line ? 2 : 0, tension: 0.25,
               maxBarThickness: 28 };
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), function (canvas) {
    var spec;
    try { spec = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    if (!window.Chart || !spec || !spec.labels || !spec.labels.length) { return; }
    var horizontal = !!spec.horizontal;
    var valueAxis = { beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#f2f3f5" } };
    var labelAxis = { grid: { display: false }, ticks: { autoSkip: !horizontal, maxRotation: 0 } };
    if (spec.stacked) { valueAxis.stacked = true; labelAxis.stacked = true; }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: datasets(spec) },
      options: {
        indexAxis: horizontal ? "y" : "x", animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: !!spec.legend, position: "top", align: "end",
                             labels: { boxWidth: 10, boxHeight: 10 } } },
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis }
      }
    });
  });
})();
