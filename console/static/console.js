// Small behaviours shared by every console page (a file of its own: the CSP forbids inline scripts).
// - toasts: a saved message fades after a few seconds; an error stays until closed;
// - avatars that fail to load become the placeholder with the first character of the name;
// - <details class="dropdown"> pickers close on a click elsewhere;
// - <form data-confirm="…"> asks before it is sent; <select data-autosubmit> sends its form on change.
(function () {
  "use strict";
  function each(selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); }

  each(".toast", function (toast) {
    var close = toast.querySelector(".close");
    if (close) { close.addEventListener("click", function () { toast.remove(); }); }
    if (!toast.classList.contains("toast-error")) { setTimeout(function () { toast.remove(); }, 5000); }
  });

  function fallback(img) {
    var span = document.createElement("span");
    span.className = img.className.replace(/\bavatar\b/, "avatar avatar-empty");
    span.setAttribute("aria-hidden", "true");
    span.textContent = img.getAttribute("data-fallback") || "客";
    if (img.parentNode) { img.parentNode.replaceChild(span, img); }
  }
  each("img[data-fallback]", function (img) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) { fallback(img); return; }
    img.addEventListener("error", function () { fallback(img); });
  });

  document.addEventListener("click", function (event) {
    each("details.dropdown[open]", function (details) {
      if (!details.contains(event.target)) { details.removeAttribute("open"); }
    });
  });

  each("form[data-confirm]", function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  each("select[data-autosubmit]", function (select) {
    select.addEventListener("change", function () { if (select.form) { select.form.submit(); } });
  });
})();
