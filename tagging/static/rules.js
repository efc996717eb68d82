// The rule editor: show the trigger's own question only (渠道 for "添加客户时", 标签 for "被打上标签时", …), and
// keep a tag from being both added and removed (ticking it on one side unticks it on the other).
(function () {
  "use strict";
  var trigger = document.getElementById("trigger");
  if (trigger) {
    var fields = document.querySelectorAll("[data-for]");
    var show = function () {
      Array.prototype.forEach.call(fields, function (el) {
        el.hidden = el.getAttribute("data-for").split(" ").indexOf(trigger.value) < 0;
      });
    };
    trigger.addEventListener("change", show);
    show();
  }
  Array.prototype.forEach.call(document.querySelectorAll("input[data-pair]"), function (box) {
    box.addEventListener("change", function () {
      if (!box.checked) { return; }
      var other = document.querySelector('input[name="' + box.getAttribute("data-pair") + '"][value="' + box.value + '"]');
      if (other) { other.checked = false; }
    });
  });
})();
