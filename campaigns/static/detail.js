// A campaign's detail page: the delivery charts (Chart.js, vendored) and, while the campaign is being
// planned or sent, its progress followed every two seconds (the page reloads when the status changes).
(function () {
  "use strict";
  var GREEN = "#07c160", COLORS = {delivered: GREEN, not_friend: "#f7ba1e", quota: "#f53f3f", unsent: "#c9cdd4",
                                   planned: "#4080ff"};

  function spec(id) {
    var canvas = document.getElementById(id);
    if (!canvas || !window.Chart) { return null; }
    try { return {canvas: canvas, data: JSON.parse(canvas.getAttribute("data-chart"))}; } catch (e) { return null; }
  }

  var timeline = spec("chart-timeline");
  if (timeline && timeline.data.labels.length) {
    new window.Chart(timeline.canvas, {
      data: {labels: timeline.data.labels, datasets: [
        {type: "bar", label: "每小时送达", data: timeline.data.per_hour, backgroundColor: "#a6e3c2", yAxisID: "y"},
        {type: "line", label: "累计送达", data: timeline.data.cumulative, borderColor: GREEN, backgroundColor: GREEN,
         tension: 0.2, yAxisID: "y1"}]},
      options: {animation: false, responsive: true, maintainAspectRatio: false,
                scales: {y: {beginAtZero: true, position: "left", ticks: {precision: 0},
                             title: {display: true, text: "每小时"}},
                         y1: {beginAtZero: true, position: "right", grid: {drawOnChartArea: false}, ticks: {precision: 0},
                              title: {display: true, text: "累计"}}}}
    });
  }

  var senders = spec("chart-senders");
  if (senders && senders.data.labels.length) {
    new window.Chart(senders.canvas, {
      type: "bar",
      data: {labels: senders.data.labels, datasets: senders.data.series.map(function (s) {
        return {label: s.label, data: s.values, backgroundColor: COLORS[s.key] || "#86909c"};
      })},
      options: {indexAxis: "y", animation: false, responsive: true, maintainAspectRatio: false,
                scales: {x: {stacked: true, beginAtZero: true, ticks: {precision: 0}}, y: {stacked: true}}}
    });
  }

  var box = document.getElementById("progress");
  if (!box) { return; }
  var bar = document.getElementById("progress-bar");
  var text = document.getElementById("progress-text");
  var STAGES = {waiting: "等待发送时间", audience: "正在计算受众和发送成员", sending: "正在提交给企业微信"};
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        if (body.status !== box.dataset.status) { window.location.reload(); return; }
        bar.value = body.progress.percent;
        if (body.status !== "scheduled") {
          text.textContent = (STAGES[body.progress.stage] || "处理中") + "：" + body.progress.done + " / " +
            body.progress.total + (body.progress.stage === "audience" ? " 批" : " 个发送任务");
        }
      })
      .catch(function () { /* the next poll tries again */ });
  }
  setInterval(poll, 2000);
}());
