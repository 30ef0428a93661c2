/*
 * Relaydesk chat widget.
 *
 *   <script src="https://support.example.com/widget.js" data-workspace="acme" async></script>
 *
 * Optional: data-identity-token="<JWT signed with the workspace's chat secret>" when the
 * host site has signed the visitor in; data-title="Chat with us"; data-lang="vi" (or
 * data-locale="vi-VN") to choose the language, which is otherwise the page's <html lang>,
 * else the browser's. English and Vietnamese; any other language gets English.
 *
 * Everything lives in a shadow root, so the host page's styles and ours never meet.
 * The conversation survives page loads (localStorage) and catches up on reconnect.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__relaydeskWidget) return;
  window.__relaydeskWidget = true;

  var base = new URL(script.src, location.href).origin;
  var workspace = script.getAttribute("data-workspace");
  var identityToken = script.getAttribute("data-identity-token");
  var TEXTS = {
    en: {
      title: "Chat with us", chat: "Chat", close: "Close", name: "Your name", email: "Your email",
      message: "How can we help?", start: "Start chat", body: "Type a message", send: "Send",
      online: "We're online — we'll answer here.",
      offline: function (email) {
        return "No one is online right now. Leave a message: we'll reply by email" + (email ? " to " + email : "") + ".";
      },
      typing: function (name) { return (name || "Support") + " is typing…"; },
      solved: "This conversation is marked solved. Write again if you need more help.",
      gone: "This chat can't be continued here any more. Write again to start a new one; " +
        "if you gave your email, our answers to the old one are on their way there.",
      failed: "Something went wrong; please try again."
    },
    vi: {
      title: "Trò chuyện với chúng tôi", chat: "Trò chuyện", close: "Đóng", name: "Tên của bạn",
      email: "Email của bạn", message: "Chúng tôi có thể giúp gì cho bạn?", start: "Bắt đầu trò chuyện",
      body: "Nhập tin nhắn", send: "Gửi",
      online: "Chúng tôi đang trực tuyến — sẽ trả lời bạn ngay tại đây.",
      offline: function (email) {
        return "Hiện không có ai trực tuyến. Hãy để lại lời nhắn: chúng tôi sẽ trả lời qua email" +
          (email ? " tới " + email : "") + ".";
      },
      typing: function (name) { return (name || "Bộ phận hỗ trợ") + " đang soạn tin…"; },
      solved: "Cuộc trò chuyện này đã được đánh dấu là đã giải quyết. Hãy nhắn lại nếu bạn cần thêm trợ giúp.",
      gone: "Không thể tiếp tục cuộc trò chuyện này tại đây nữa. Hãy nhắn lại để bắt đầu cuộc trò chuyện mới; " +
        "nếu bạn đã để lại email, câu trả lời cho cuộc trò chuyện cũ đang được gửi tới đó.",
      failed: "Đã có lỗi xảy ra; vui lòng thử lại."
    }
  };
  // The first language given wins, even one we lack: a page that says it is French gets
  // English, not a guess from the browser.
  var lang = (script.getAttribute("data-lang") || script.getAttribute("data-locale") ||
              document.documentElement.lang || navigator.language || "en").split(/[-_]/)[0].toLowerCase();
  var t = TEXTS[lang] || TEXTS.en;
  var title = script.getAttribute("data-title") || t.title;
  var storageKey = "relaydesk-chat:" + base + ":" + workspace;
  var api = base + "/api/v1/chat/" + encodeURIComponent(workspace);

  // Whose conversation the stored one is: a shared browser where one signed-in user
  // leaves and another arrives (or an anonymous visitor follows) must not be shown, or
  // continue, the previous person's chat.
  var owner = identityToken ? "identity:" + (identityEmail(identityToken) || "?") : "visitor";
  var state = load() || {};
  if (state.owner !== owner) state = { owner: owner };
  var socket = null;
  var lastEventId = state.lastEventId || 0;
  var seen = {};
  var typingTimer = null;
  var typingSent = false;
  var reconnectDelay = 1000;

  function identityEmail(token) {
    // Only to tell people apart; the server checks the signature.
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return String(JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).email || "").toLowerCase();
    } catch (e) { return null; }
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(storageKey)); } catch (e) { return null; }
  }
  function save() {
    try {
      state.lastEventId = lastEventId;
      localStorage.setItem(storageKey, JSON.stringify(state));
    } catch (e) { /* private mode: the chat still works for this page */ }
  }

  // -- the panel -----------------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-relaydesk-widget", "");
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "open" });
  var attr = function (text) { return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;"); };
  root.innerHTML =
    '<style>' +
    ':host{all:initial}[hidden]{display:none!important}' +
    '.rd{position:fixed;right:20px;bottom:20px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif;color:#1f2933}' +
    '.launch{background:#2563eb;color:#fff;border:0;border-radius:24px;padding:12px 18px;cursor:pointer;font:inherit;box-shadow:0 4px 12px rgba(0,0,0,.2)}' +
    '.panel{display:none;flex-direction:column;width:320px;height:440px;background:#fff;border-radius:12px;box-shadow:0 8px 28px rgba(0,0,0,.25);overflow:hidden}' +
    '.open .panel{display:flex}.open .launch{display:none}' +
    'header{background:#2563eb;color:#fff;padding:10px 14px;display:flex;justify-content:space-between;align-items:center}' +
    'header button{background:none;border:0;color:#fff;font-size:18px;cursor:pointer}' +
    '.status{font-size:12px;padding:6px 14px;background:#eef2ff}' +
    '.log{flex:1;overflow-y:auto;padding:10px 14px}' +
    '.msg{margin:6px 0;padding:8px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}' +
    '.customer{background:#2563eb;color:#fff;margin-left:auto}.agent{background:#f1f5f9}' +
    '.typing{font-size:12px;color:#64748b;padding:0 14px;height:18px}' +
    'form{display:flex;flex-direction:column;gap:6px;padding:10px 14px;border-top:1px solid #e2e8f0}' +
    'input,textarea{font:inherit;border:1px solid #cbd5e1;border-radius:6px;padding:6px 8px}' +
    'form button{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:8px;font:inherit;cursor:pointer}' +
    '.error{color:#b91c1c;font-size:12px}' +
    '</style>' +
    '<div class="rd" part="widget">' +
    '  <button class="launch" type="button"></button>' +
    '  <div class="panel" role="dialog" aria-label="' + attr(t.chat) + '">' +
    '    <header><span class="title"></span>' +
    '<button class="close" type="button" aria-label="' + attr(t.close) + '">×</button></header>' +
    '    <div class="status" role="status"></div>' +
    '    <div class="log" aria-live="polite"></div>' +
    '    <div class="typing"></div>' +
    '    <form class="start">' +
    '      <input name="name" placeholder="' + attr(t.name) + '" autocomplete="name" required>' +
    '      <input name="email" type="email" placeholder="' + attr(t.email) + '" autocomplete="email" required>' +
    '      <textarea name="message" rows="3" placeholder="' + attr(t.message) + '" required></textarea>' +
    '      <div class="error"></div>' +
    '      <button type="submit">' + attr(t.start) + '</button>' +
    '    </form>' +
    '    <form class="say" hidden>' +
    '      <textarea name="body" rows="2" placeholder="' + attr(t.body) + '" required></textarea>' +
    '      <div class="error"></div>' +
    '      <button type="submit">' + attr(t.send) + '</button>' +
    '    </form>' +
    '  </div>' +
    '</div>';

  var $ = function (selector) { return root.querySelector(selector); };
  var widget = $(".rd"), log = $(".log"), statusLine = $(".status"), typingLine = $(".typing");
  var startForm = $("form.start"), sayForm = $("form.say");
  $(".launch").textContent = title;
  $(".title").textContent = title;
  if (identityToken) {
    startForm.elements.name.hidden = true; startForm.elements.name.required = false;
    startForm.elements.email.hidden = true; startForm.elements.email.required = false;
  }

  $(".launch").addEventListener("click", function () { widget.classList.add("open"); refreshStatus(); });
  $(".close").addEventListener("click", function () { widget.classList.remove("open"); });

  function line(kind, text, id) {
    if (id && seen[id]) return;
    if (id) seen[id] = true;
    var div = document.createElement("div");
    div.className = "msg " + (kind === "customer" ? "customer" : "agent");
    div.textContent = text;
    // In the order they were said, however they arrive: a live line can come before the
    // transcript it follows. Message ids are time-ordered (UUIDv7), so they sort as said.
    div.setAttribute("data-id", id || "");
    var later = null;
    if (id) {
      var shown = log.querySelectorAll(".msg[data-id]");
      for (var i = 0; i < shown.length && !later; i++) {
        var other = shown[i].getAttribute("data-id");
        if (other && other > id) later = shown[i];
      }
    }
    log.insertBefore(div, later);
    log.scrollTop = log.scrollHeight;
  }

  function showError(form, text) { form.querySelector(".error").textContent = text || ""; }

  function problemText(body) {
    if (body && body.errors && body.errors.length) return body.errors[0].message;
    return (body && body.detail) || t.failed;
  }

  function request(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers["X-Chat-Token"] = state.token;
    return fetch(api + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new Error(problemText(data));
          return data;
        });
      });
  }

  function setStatus(online) {
    statusLine.textContent = online ? t.online : t.offline(state.email);
    statusLine.setAttribute("data-online", online ? "yes" : "no");
  }

  function refreshStatus() {
    fetch(api + "/status").then(function (r) { return r.json(); })
      .then(function (s) { setStatus(s.agents_online); }).catch(function () {});
  }

  // -- starting and talking ---------------------------------------------------------------
  startForm.addEventListener("submit", function (event) {
    event.preventDefault();
    showError(startForm, "");
    var f = startForm.elements;
    var body = { message: f.message.value };
    if (identityToken) body.identity_token = identityToken;
    else { body.name = f.name.value; body.email = f.email.value; }
    request("POST", "/conversations", body).then(function (started) {
      state = { owner: owner, token: started.token, ticketId: started.ticket_id, number: started.number,
                email: body.email };
      save();
      setStatus(started.agents_online);
      enterConversation();
    }).catch(function (e) { showError(startForm, e.message); });
  });

  sayForm.addEventListener("submit", function (event) {
    event.preventDefault();
    showError(sayForm, "");
    var text = sayForm.elements.body.value;
    if (!text.trim()) return;
    request("POST", "/conversations/" + state.ticketId + "/messages", { body: text }).then(function (said) {
      line("customer", text, said.id);
      sayForm.elements.body.value = "";
      stopTyping();
      if (said.ticket_id !== state.ticketId) {  // a closed chat continued as a new ticket
        state.ticketId = said.ticket_id; state.token = said.token; save(); connect();
      }
    }).catch(function (e) { showError(sayForm, e.message); });
  });

  // Enter sends, Shift+Enter starts a new line, as in every chat. An Enter that ends an
  // input method's composition (Vietnamese Telex, Chinese, Japanese...) is the input
  // method's (229: Safari's key code for it, sent without isComposing).
  function sendOnEnter(form, box) {
    box.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      form.querySelector("button[type=submit]").click();  // as a click, so required fields are checked
    });
  }
  sendOnEnter(startForm, startForm.elements.message);
  sendOnEnter(sayForm, sayForm.elements.body);

  sayForm.elements.body.addEventListener("input", function () {
    if (!typingSent) { sendFrame({ type: "typing", ticket_id: state.ticketId, state: "started" }); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  });

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent) sendFrame({ type: "typing", ticket_id: state.ticketId, state: "stopped" });
    typingSent = false;
  }

  function enterConversation() {
    startForm.hidden = true;
    sayForm.hidden = false;
    connect();
  }

  // -- live ----------------------------------------------------------------------------------
  function sendFrame(frame) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(frame));
  }

  function connect() {
    if (socket) { socket.onclose = null; socket.close(); }
    var url = base.replace(/^http/, "ws") + "/api/v1/ws?chat_token=" + encodeURIComponent(state.token) +
      "&subscribe=ticket:" + state.ticketId + (lastEventId ? "&last_event_id=" + lastEventId : "");
    socket = new WebSocket(url);
    socket.onopen = function () { reconnectDelay = 1000; };
    socket.onmessage = function (message) {
      var frame = JSON.parse(message.data);
      if (frame.type === "ping") { sendFrame({ type: "pong" }); return; }
      // Subscribed (first time or again): the transcript fills in whatever was said before
      // the socket was there; lines already shown are skipped by their id.
      // Unreachable a moment (the site restarting): the next subscription loads it again.
      if (frame.type === "resync_required" || frame.type === "subscribed") {
        loadTranscript().catch(function () {});
        return;
      }
      if (frame.type !== "event") return;
      if (frame.id) { lastEventId = Math.max(lastEventId, frame.id); save(); }
      var data = frame.data;
      if (frame.event === "message.posted") {
        typingLine.textContent = "";
        line(data.author_kind, data.body_text, data.message_id);
      } else if (frame.event === "typing" && data.author_kind === "agent") {
        typingLine.textContent = data.state === "started" ? t.typing(data.name) : "";
      } else if (frame.event === "ticket.status_changed" && (data.after === "RESOLVED" || data.after === "CLOSED")) {
        statusLine.textContent = t.solved;
      }
    };
    socket.onclose = function (event) {
      // 4401: the server no longer takes this chat's token (it expired, or the support
      // site's keys changed). Trying again cannot help: start afresh, and say so.
      if (event.code === 4401) { leaveConversation(); return; }
      setTimeout(function () { if (state.token) connect(); }, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 30000);
    };
  }

  function leaveConversation() {
    socket = null;
    state = { owner: owner };
    lastEventId = 0;
    save();
    sayForm.hidden = true;
    startForm.hidden = false;
    showError(startForm, t.gone);
  }

  function loadTranscript() {
    return request("GET", "/conversations/" + state.ticketId + "/messages").then(function (lines) {
      lines.forEach(function (m) { line(m.author_kind, m.body_text, m.id); });
    });
  }

  if (state.token && state.ticketId) {
    loadTranscript().then(enterConversation).catch(function () { state = { owner: owner }; save(); });
  }
  refreshStatus();
})();
