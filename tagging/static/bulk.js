// The bulk tag page: a tag is added or removed, never both (ticking one side unticks the other), and the
// summary says how many customers the job reaches and what it does to them.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  if (!form) { return; }
  var summary = document.getElementById("bulk-summary");
  var pastedCount = null, timer = null;
  function picked(name) {
    return Array.prototype.map.call(form.querySelectorAll('input[name="' + name + '"]:checked'),
                                    function (b) { return b.getAttribute("data-name"); });
  }
  function audienceSize() {
    var chosen = form.querySelector('input[name="audience"]:checked');
    if (!chosen) { return null; }
    if (chosen.value === "segment") {
      var option = document.getElementById("segment").selectedOptions[0];
      return option && option.getAttribute("data-size") !== null && option.value ? option.getAttribute("data-size") : null;
    }
    if (chosen.value === "list") { return pastedCount; }
    return chosen.getAttribute("data-size");
  }
  function render() {
    var add = picked("add"), remove = picked("remove"), size = audienceSize();
    var parts = [];
    if (add.length) { parts.push("添加 " + add.join("、")); }
    if (remove.length) { parts.push("移除 " + remove.join("、")); }
    var who = size === null || size === "" ? "所选客户" : Number(size).toLocaleString("zh-CN") + " 位客户";
    summary.textContent = parts.length ? "将为 " + who + parts.join("，") : "请选择要添加或移除的标签";
  }
  function countPasted() {
    var text = document.getElementById("pasted").value;
    if (!text.trim()) { pastedCount = null; render(); return; }
    var data = new FormData();
    data.append("external_userids", text);
    fetch(form.getAttribute("data-count-url"), { method: "POST", body: data, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": form.querySelector('[name="csrf_token"]').value } })
      .then(function (r) { return r.json(); })
      .then(function (body) { pastedCount = body.error ? null : body.found; render(); })
      .catch(function () { pastedCount = null; render(); });
  }
  form.addEventListener("change", function (event) {
    var box = event.target;
    if (box.getAttribute && box.getAttribute("data-pair") && box.checked) {
      var other = form.querySelector('input[name="' + box.getAttribute("data-pair") + '"][value="' + box.value + '"]');
      if (other) { other.checked = false; }
    }
    if (box.name === "segment_id") { form.querySelector('input[name="audience"][value="segment"]').checked = true; }
    render();
  });
  document.getElementById("pasted").addEventListener("input", function () {
    form.querySelector('input[name="audience"][value="list"]').checked = true;
    clearTimeout(timer);
    timer = setTimeout(countPasted, 400);
  });
  if (document.getElementById("pasted").value.trim()) { countPasted(); }
  render();
})();
