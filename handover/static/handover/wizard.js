// The handover wizard: show the pickers when "some" is chosen, filter and (un)check the customer list, count
// the notice's characters, and once a preview is shown, ask for a new one when the choices change.
(function () {
  "use strict";
  var form = document.getElementById("wizard");
  if (!form) { return; }
  function each(selector, fn) { Array.prototype.forEach.call(form.querySelectorAll(selector), fn); }

  function toggle(name, target) {
    var box = document.getElementById(target);
    if (!box) { return; }
    var some = form.querySelector("input[name=" + name + "][value=some]");
    box.hidden = !(some && some.checked);
  }
  function counted() {
    var label = document.getElementById("customer-picked");
    if (!label) { return; }
    var all = form.querySelectorAll("input[name=customer]").length;
    var on = form.querySelectorAll("input[name=customer]:checked").length;
    label.textContent = "已选 " + on + " / " + all + " 位";
  }
  each("input[name=customers_mode]", function (input) {
    input.addEventListener("change", function () { toggle("customers_mode", "customer-picker"); });
  });
  each("input[name=chats_mode]", function (input) {
    input.addEventListener("change", function () { toggle("chats_mode", "chat-picker"); });
  });
  var filter = document.getElementById("customer-filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      each(".pick-row[data-name]", function (row) {
        row.hidden = q !== "" && (row.getAttribute("data-name") || "").toLowerCase().indexOf(q) === -1;
      });
    });
  }
  each("button[data-check]", function (button) {
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-value") === "1";
      each("input[name=" + button.getAttribute("data-check") + "]", function (box) {
        if (!box.closest(".pick-row").hidden) { box.checked = on; }
      });
      counted();
    });
  });
  each("input[name=customer]", function (box) { box.addEventListener("change", counted); });
  counted();

  var notice = document.getElementById("notice");
  var count = document.getElementById("notice-count");
  if (notice && count) {
    var max = notice.getAttribute("maxlength");
    notice.addEventListener("input", function () { count.textContent = notice.value.length + " / " + max; });
  }

  // A preview describes the choices it was made for: changing them asks for a new preview first.
  var confirm = document.getElementById("confirm-button");
  if (confirm) {
    form.addEventListener("change", function (event) {
      if (event.target && event.target.id === "customer-filter") { return; }
      confirm.disabled = true;
      var hint = document.getElementById("confirm-hint");
      if (hint) { hint.textContent = "选择已修改，请先重新预览。"; }
    });
  }
})();
