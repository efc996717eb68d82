// The campaign composer: shows the fields that apply, keeps the live reach (the same decisions as at send
// time: count, exclusions by reason, senders), edits attachments (files are uploaded as they are added) and
// draws the message as the WeCom client will show it. The attachments travel in a hidden field as JSON.
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  if (!form) { return; }
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var field = document.getElementById("attachments-field");
  var list = document.getElementById("attachment-list");
  var errorEl = document.getElementById("attachment-error");
  var maxAttachments = parseInt(form.dataset.maxAttachments, 10) || 9;
  var uploads = {};
  try { uploads = JSON.parse(form.dataset.uploads || "{}"); } catch (e) { uploads = {}; }
  var items = [];
  try { items = JSON.parse(field.value || "[]"); } catch (e) { items = []; }
  if (!Array.isArray(items)) { items = []; }

  var LABELS = {image: "图片", link: "链接", miniprogram: "小程序", video: "视频", file: "文件"};
  var ACCEPT = {image: ".jpg,.jpeg,.png", video: ".mp4", file: ""};

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function value(name) {
    var checked = form.querySelector("input[name=" + name + "]:checked");
    if (checked) { return checked.value; }
    var other = form.querySelector("select[name=" + name + "]");
    return other ? other.value : "";
  }

  // ---------------------------------------------------------------- which fields apply

  function toggle() {
    Array.prototype.forEach.call(form.querySelectorAll("[data-when]"), function (node) {
      var parts = node.dataset.when.split("=");
      var shown = value(parts[0]) === parts[1];
      if (parts[0] === "sender_rule" && value("chat_type") !== "single") { shown = false; }
      node.hidden = !shown;
    });
    document.getElementById("reach-unit").textContent = value("chat_type") === "group" ? "个客户群将收到" : "位客户将收到";
  }

  // ---------------------------------------------------------------- live reach

  var timer = null;
  var seq = 0;

  function setText(id, text) { document.getElementById(id).textContent = text; }

  function renderReach(body) {
    setText("reach-count", String(body.count));
    ["lost", "quota", "no_sender"].forEach(function (reason) {
      setText("excluded-" + reason, String((body.excluded || {})[reason] || 0));
    });
    var senders = body.senders ? body.senders + " 位成员发送，共 " + body.calls + " 个发送任务" : "没有可发送的成员";
    setText("reach-senders", senders);
    setText("reach-error", "");
    var sample = document.getElementById("reach-sample");
    sample.textContent = "";
    (body.sample || []).forEach(function (s) {
      var li = el("li", null, s.name);
      if (s.sender_name) { li.appendChild(el("span", "muted", " 由 " + s.sender_name + " 发送")); }
      sample.appendChild(li);
    });
  }

  function refresh() {
    var mine = ++seq;
    var data = new FormData(form);
    fetch(form.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin",
                                    headers: {"Accept": "application/json", "X-CSRF-Token": csrf}})
      .then(function (resp) { return resp.json().then(function (body) { return {ok: resp.ok, body: body}; }); })
      .then(function (answer) {
        if (mine !== seq) { return; }
        if (answer.ok) { renderReach(answer.body); return; }
        setText("reach-count", "—");
        setText("reach-error", (answer.body.error || {}).message || "无法计算人数");
      })
      .catch(function () { if (mine === seq) { setText("reach-error", "网络错误，请稍后重试"); } });
  }

  function schedule(event) {
    var name = event && event.target ? event.target.name : "";
    if (name === "name" || name === "tag_id") { return; }
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }

  // ---------------------------------------------------------------- attachments

  function save() {
    field.value = JSON.stringify(items);
    errorEl.textContent = "";
    drawBubble();
  }

  function input(label, key, obj, attrs) {
    var wrap = el("label", "field", label + " ");
    var box = el("input");
    box.type = (attrs && attrs.type) || "text";
    box.value = obj[key] || "";
    if (attrs && attrs.placeholder) { box.placeholder = attrs.placeholder; }
    box.addEventListener("input", function () { obj[key] = box.value; save(); });
    wrap.appendChild(box);
    return wrap;
  }

  function uploader(kind, onDone, current) {
    var wrap = el("div", "upload");
    var pick = el("label", "button", current ? "重新选择" + LABELS[kind] : "选择" + LABELS[kind]);
    var name = el("span", "muted", current ? current.filename : "尚未上传");
    var chooser = el("input", "visually-hidden");
    chooser.type = "file";
    chooser.accept = ACCEPT[kind] || "";
    chooser.setAttribute("aria-label", "选择" + LABELS[kind]);
    pick.appendChild(chooser);
    chooser.addEventListener("change", function () {
      if (!chooser.files.length) { return; }
      var data = new FormData();
      data.append("kind", kind);
      data.append("media", chooser.files[0]);
      name.textContent = "上传中……";
      fetch(form.dataset.uploadUrl, {method: "POST", body: data, credentials: "same-origin",
                                     headers: {"Accept": "application/json", "X-CSRF-Token": csrf}})
        .then(function (resp) { return resp.json().then(function (body) { return {ok: resp.ok, body: body}; }); })
        .then(function (answer) {
          if (!answer.ok) {
            name.textContent = "上传失败";
            errorEl.textContent = (answer.body.error || {}).message || "上传失败";
            return;
          }
          uploads[answer.body.id] = answer.body;
          name.textContent = answer.body.filename + "（" + (answer.body.size / 1024).toFixed(1) + " KB）";
          onDone(answer.body.id);
        })
        .catch(function () { name.textContent = "上传失败"; errorEl.textContent = "网络错误，请重试"; });
    });
    wrap.appendChild(pick);
    wrap.appendChild(name);
    return wrap;
  }

  function editor(item, index) {
    var kind = item.msgtype;
    var obj = item[kind];
    var li = el("li", "attachment card");
    var head = el("div", "attachment-head");
    head.appendChild(el("strong", null, LABELS[kind]));
    var remove = el("button", "link danger", "删除");
    remove.type = "button";
    remove.addEventListener("click", function () { items.splice(index, 1); draw(); save(); schedule(); });
    head.appendChild(remove);
    li.appendChild(head);
    if (kind === "link") {
      li.appendChild(input("标题", "title", obj, {placeholder: "最多 128 字节"}));
      li.appendChild(input("链接地址", "url", obj, {type: "url", placeholder: "https://"}));
      li.appendChild(input("描述", "desc", obj));
      li.appendChild(input("封面图片地址（可选）", "picurl", obj, {type: "url", placeholder: "https://"}));
    } else if (kind === "miniprogram") {
      li.appendChild(input("标题", "title", obj));
      li.appendChild(input("小程序 AppID", "appid", obj, {placeholder: "wx…"}));
      li.appendChild(input("页面路径", "page", obj, {placeholder: "pages/index/index"}));
      li.appendChild(el("span", "muted", "封面图片（建议 520×416）"));
      li.appendChild(uploader("image", function (id) { obj.pic_upload_id = id; save(); }, uploads[obj.pic_upload_id]));
    } else {
      li.appendChild(uploader(kind, function (id) { obj.upload_id = id; save(); }, uploads[obj.upload_id]));
    }
    return li;
  }

  function draw() {
    list.textContent = "";
    items.forEach(function (item, i) { if (item && LABELS[item.msgtype]) { list.appendChild(editor(item, i)); } });
  }

  function add(kind) {
    if (items.length >= maxAttachments) {
      errorEl.textContent = "最多 " + maxAttachments + " 个附件";
      return;
    }
    var item = {msgtype: kind};
    item[kind] = kind === "link" ? {title: "", url: "", desc: "", picurl: ""} :
      kind === "miniprogram" ? {title: "", appid: "", page: ""} : {};
    items.push(item);
    draw();
    save();
  }

  // ---------------------------------------------------------------- the preview bubble

  function row(content) {
    var r = el("div", "wx-row");
    r.appendChild(el("span", "wx-avatar", "员"));
    r.appendChild(content);
    return r;
  }

  function drawBubble() {
    var box = document.getElementById("bubble-preview");
    box.textContent = "";
    var phone = el("div", "wx-phone");
    phone.appendChild(el("div", "wx-title", "成员 · 客户联系"));
    var chat = el("div", "wx-chat");
    var text = document.getElementById("text-field").value.trim();
    if (text) { chat.appendChild(row(el("div", "wx-bubble", text))); }
    items.forEach(function (item) {
      var kind = item.msgtype, obj = item[kind] || {};
      var card;
      if (kind === "image") {
        if (obj.upload_id && uploads[obj.upload_id]) {
          card = el("img", "wx-image");
          card.src = uploads[obj.upload_id].url || (form.dataset.uploadUrl + "/" + obj.upload_id);
          card.alt = "图片附件";
        } else { card = el("div", "wx-card", "（图片尚未上传）"); }
      } else if (kind === "link") {
        card = el("div", "wx-card");
        card.appendChild(el("div", "wx-card-title", obj.title || "（链接标题）"));
        card.appendChild(el("div", "wx-card-desc", obj.desc || obj.url || ""));
      } else if (kind === "miniprogram") {
        card = el("div", "wx-card wx-mini");
        card.appendChild(el("div", "wx-card-title", obj.title || "（小程序标题）"));
        if (obj.pic_upload_id && uploads[obj.pic_upload_id]) {
          var cover = el("img", "wx-mini-cover");
          cover.src = uploads[obj.pic_upload_id].url || (form.dataset.uploadUrl + "/" + obj.pic_upload_id);
          cover.alt = "小程序封面";
          card.appendChild(cover);
        }
        card.appendChild(el("div", "wx-card-foot", "小程序"));
      } else {
        var u = uploads[obj.upload_id];
        card = el("div", "wx-card wx-file");
        card.appendChild(el("div", "wx-card-title", u ? u.filename : "（" + LABELS[kind] + "尚未上传）"));
        card.appendChild(el("div", "wx-card-foot", LABELS[kind] + (u ? " · " + (u.size / 1024).toFixed(1) + " KB" : "")));
      }
      chat.appendChild(row(card));
    });
    if (!chat.childNodes.length) { chat.appendChild(el("p", "muted", "输入文字或添加附件后在这里预览")); }
    phone.appendChild(chat);
    box.appendChild(phone);
    var bytes = new TextEncoder().encode(document.getElementById("text-field").value).length;
    var counter = document.getElementById("text-bytes");
    counter.textContent = String(bytes);
    counter.className = bytes > 4000 ? "error" : "";
  }

  // ---------------------------------------------------------------- wiring

  Array.prototype.forEach.call(form.querySelectorAll("[data-add]"), function (button) {
    button.addEventListener("click", function () { add(button.dataset.add); });
  });
  form.addEventListener("change", function (event) { toggle(); schedule(event); });
  form.addEventListener("input", function (event) {
    if (event.target.id === "text-field") { drawBubble(); }
    schedule(event);
  });
  form.addEventListener("submit", function () { field.value = JSON.stringify(items); });
  Object.keys(uploads).forEach(function (id) {
    if (!uploads[id].url) { uploads[id].url = form.dataset.uploadUrl + "/" + id; }
  });
  toggle();
  draw();
  drawBubble();
  refresh();
}());
