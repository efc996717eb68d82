// Avatars that fail to load (WeCom's CDN unreachable, a picture gone) become the placeholder with the
// first character of the name: <img class="avatar" data-fallback="张">. A file of its own because the
// pages' CSP forbids inline handlers such as onerror.
(function () {
  "use strict";
  function replace(img) {
    var span = document.createElement("span");
    span.className = "avatar avatar-empty";
    span.setAttribute("aria-hidden", "true");
    span.textContent = img.getAttribute("data-fallback") || "客";
    if (img.parentNode) { img.parentNode.replaceChild(span, img); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("img[data-fallback]"), function (img) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) { replace(img); return; }
    img.addEventListener("error", function () { replace(img); });
  });
})();
