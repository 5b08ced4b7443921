/*
 * Embeddable chat for the article chatbot: one script tag, no build step, no dependencies.
 *
 *   <script src="http://HOST:PORT/widget.js" data-title="Ask the article" data-lang="fr" defer></script>
 *   data-mode="inline" data-target="#some-id"  renders the panel inside that element instead of a bubble.
 *   data-document="ID"  answers only from that indexed document (its id, or its page URL). Without it,
 *   the host page's <link rel="canonical"> is sent as `page`: the server answers from the document
 *   indexed under that URL, or from every document when none is.
 *
 * Simplifies: the API base is this script's own origin, so the tag is the whole configuration.
 * Everything lives in a Shadow DOM (the host page's CSS cannot reach it, ours cannot leak out),
 * and every string from the server or the user is inserted with textContent, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src) return;
  var API = new URL(script.src, window.location.href).origin;
  var attr = function (name) { return script.getAttribute("data-" + name) || ""; };
  var opts = {
    title: attr("title"),
    lang: (attr("lang") || document.documentElement.lang || "en").slice(0, 2).toLowerCase(),
    inline: attr("mode") === "inline",
    target: attr("target"),
    document: attr("document").trim(),
    page: ""
  };
  if (!opts.document) opts.page = canonicalUrl();
  var MAX_HISTORY = 20; // messages sent back as context; the server enforces its own limits too
  var MAX_HISTORY_CHARS = 20000; // the server's default max_history_chars: past it, the question would be refused
  // The host page's canonical URL (absolute, http or https only), or "" when it has none.
  function canonicalUrl() {
    var links = document.querySelectorAll("link[rel][href]");
    for (var i = 0; i < links.length; i++) {
      var rel = (links[i].getAttribute("rel") || "").toLowerCase().split(/\s+/);
      if (rel.indexOf("canonical") < 0) continue;
      try {
        var url = new URL(links[i].getAttribute("href"), document.baseURI);
        if ((url.protocol === "http:" || url.protocol === "https:") && url.href.length <= 2000) return url.href;
      } catch (e) { /* not a URL */ }
      return "";
    }
    return "";
  }
  var S = { // replaced by /api/messages in the page's language once it answers
    title: "Ask the article", welcome: "", placeholder: "Ask a question about the article…", send: "Send",
    new_chat: "New chat", open_chat: "Open the chat", close_chat: "Close the chat", question_label: "Your question",
    sources: "Sources", thinking: "Searching the article…", error_generic: "Something went wrong; please try again.",
    error_network: "The server cannot be reached; please try again.", feedback_up: "Helpful",
    feedback_down: "Not helpful", feedback_thanks: "Thanks for the feedback."
  };

  var CSS = [
    ":host { all: initial; display: block; }",
    // the host page's own rules on our host element (e.g. `* { color: ... }`) beat :host, and
    // inherited properties would flow in: so the base typography is set again on our elements
    ".panel, .bubble { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2937;",
    "  text-align: left; letter-spacing: normal; text-transform: none; }",
    ":host([data-mode=inline]) { height: 100%; }",
    "*, *::before, *::after { box-sizing: border-box; }",
    "button { font: inherit; cursor: pointer; }",
    ":focus-visible { outline: 3px solid #93c5fd; outline-offset: 2px; }",
    ".bubble { position: fixed; right: 20px; bottom: 20px; width: 58px; height: 58px; border-radius: 50%; border: 0;",
    "  background: var(--article-chat-accent, #1d4ed8); color: #fff; box-shadow: 0 6px 20px rgba(0,0,0,.25); z-index: 2147483000;",
    "  display: grid; place-items: center; }",
    ".bubble svg { width: 28px; height: 28px; fill: currentColor; }",
    ".panel { display: flex; flex-direction: column; background: #fff; overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    ".floating { position: fixed; right: 20px; bottom: 90px; width: 400px; height: min(620px, calc(100vh - 120px));",
    "  border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.28); z-index: 2147483001; }",
    ".inline { width: 100%; height: 100%; min-height: 320px; }",
    "header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: var(--article-chat-accent, #1d4ed8); color: #fff; }",
    "h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }",
    "header button { background: rgba(255,255,255,.16); color: #fff; border: 0; border-radius: 8px; padding: 5px 10px; }",
    "header button:hover { background: rgba(255,255,255,.28); }",
    ".close { font-size: 20px; line-height: 1; padding: 4px 10px; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px; background: #f8fafc; }",
    ".welcome { color: #475569; margin: 4px 0 12px; }",
    ".welcome.scope-error { color: #b91c1c; }",
    ".examples { display: flex; flex-wrap: wrap; gap: 6px; margin: -4px 0 12px; }",
    ".examples[hidden] { display: none; }",
    ".example { border: 1px solid #cbd5e1; background: #fff; color: #1e3a8a; border-radius: 999px; padding: 4px 10px;",
    "  font-size: 13px; text-align: left; overflow-wrap: anywhere; }",
    ".example:hover { border-color: var(--article-chat-accent, #1d4ed8); }",
    ".example:disabled { opacity: .5; cursor: default; }",
    ".msg { margin: 0 0 12px; max-width: 92%; padding: 9px 12px; border-radius: 12px; overflow-wrap: anywhere; }",
    ".user { margin-left: auto; background: #dbeafe; border-bottom-right-radius: 4px; white-space: pre-wrap; }",
    ".bot { background: #fff; border: 1px solid #e2e8f0; border-bottom-left-radius: 4px; }",
    ".bot .text { white-space: pre-wrap; }",
    ".pending .text { color: #64748b; font-style: italic; }",
    ".error .text { color: #b91c1c; }",
    ".refusal .text { color: #475569; }",
    ".unsure .text { border-left: 3px dashed #d97706; padding-left: 8px; background: #fffbeb; }",
    ".note { margin: 8px 0 0; font-size: 13px; font-style: italic; color: #64748b; }",
    ".cite { border: 0; background: none; padding: 0 1px; color: var(--article-chat-accent, #1d4ed8); font-weight: 600; }",
    ".cite:hover { text-decoration: underline; }",
    ".sources { margin-top: 8px; border-top: 1px solid #e2e8f0; padding-top: 6px; }",
    ".sources-label { font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: #64748b; margin: 2px 0 4px; }",
    "details { margin: 4px 0; border: 1px solid #e2e8f0; border-radius: 8px; background: #f8fafc; }",
    "summary { cursor: pointer; padding: 6px 8px; font-size: 13px; color: #334155; overflow-wrap: anywhere; }",
    ".passage { margin: 0; padding: 4px 10px 10px; font-size: 13.5px; white-space: pre-wrap; color: #1f2937; }",
    "mark { background: #fde68a; color: inherit; border-radius: 3px; padding: 0 1px; }",
    ".rate { display: flex; gap: 6px; margin-top: 6px; font-size: 12px; color: #64748b; align-items: center; }",
    ".rate button { border: 1px solid #e2e8f0; background: #fff; border-radius: 6px; padding: 3px 7px; color: #64748b; line-height: 0; }",
    ".rate button:hover { color: var(--article-chat-accent, #1d4ed8); }",
    ".rate svg { width: 14px; height: 14px; fill: currentColor; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e2e8f0; background: #fff; }",
    "textarea { flex: 1; resize: none; font: inherit; padding: 8px 10px; border: 1px solid #cbd5e1; border-radius: 10px; max-height: 120px; }",
    ".send { border: 0; border-radius: 10px; padding: 0 14px; background: var(--article-chat-accent, #1d4ed8); color: #fff; }",
    ".send:disabled { opacity: .5; cursor: default; }",
    ".sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }",
    "@media (max-width: 480px) {",
    "  .floating { inset: 0; width: 100%; height: 100%; border-radius: 0; }",
    "  .bubble { right: 14px; bottom: 14px; }",
    "}"
  ].join("\n");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var ICONS = { // Material-style paths; built node by node, no markup strings anywhere in this file
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z",
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z"
  };

  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  // Server-sent events from a fetch() body (EventSource cannot POST).
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      var end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        var frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        var name = "message", data = [];
        frame.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) name = line.slice(6).trim();
          else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
        });
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // The [n] markers the system wrote, as {start, end, id}: a marker inside a quoted passage is the
  // document's own text and never becomes a link (the same rule as chatbot/render.py system_markers).
  // No quote (a generated answer): every marker. A quote (the extractive answer: `lead [1]` then
  // `Label: “quote” [1]`): the last marker of each paragraph, none between the first opening and
  // the last closing delimiter, so a delimiter written by the document cannot end the quote early.
  function systemMarkers(text) {
    var found = [], re = /\[(\d+)\]/g, m;
    while ((m = re.exec(text))) found.push({ start: m.index, end: m.index + m[0].length, id: m[1] });
    var anyQuote = [["\u201c", "\u201d"], ["\u00ab", "\u00bb"]].some(function (q) {
      var a = text.indexOf(q[0]);
      return a >= 0 && a < text.lastIndexOf(q[1]);
    });
    if (!anyQuote) return found;
    var starts = [0], para = /(?:\r\n?|\n)[ \t]*(?:\r\n?|\n)/g;
    while ((m = para.exec(text))) starts.push(m.index + m[0].length);
    var last = {}, order = [];
    found.forEach(function (f) {
      var p = 0;
      starts.forEach(function (s) { if (s <= f.start) p = s; });
      if (!(p in last)) order.push(p);
      last[p] = f;
    });
    // quotes are delimited within a paragraph (a "not sure" answer quotes two candidates); one
    // left open runs on to the last closing delimiter of the next paragraph that has one
    var ends = starts.slice(1).concat([text.length]), quoted = [];
    [["\u201c", "\u201d"], ["\u00ab", "\u00bb"]].forEach(function (q) {
      var carried = -1;
      starts.forEach(function (ps, i) {
        var part = text.slice(ps, ends[i]), a = part.indexOf(q[0]), b = part.lastIndexOf(q[1]);
        if (carried >= 0) {
          if (b >= 0) { quoted.push([carried, ps + b]); carried = -1; }
        } else if (a >= 0 && a < b) {
          quoted.push([ps + a, ps + b]);
        } else if (a >= 0) {
          carried = ps + a;
        }
      });
    });
    return order.map(function (p) { return last[p]; }).filter(function (f) {
      return !quoted.some(function (q) { return q[0] < f.start && f.start < q[1]; });
    });
  }

  function start() {
    var mount = document.body;
    if (opts.inline) {
      try { mount = opts.target ? document.querySelector(opts.target) : null; } catch (e) { mount = null; }
      if (!mount) { console.warn("chat widget: data-target " + JSON.stringify(opts.target) + " matches no element"); return; }
    }
    var host = document.createElement("div");
    host.setAttribute("data-mode", opts.inline ? "inline" : "bubble");
    host.className = "article-chat-widget";
    mount.appendChild(host);
    var root = host.attachShadow({ mode: "open" });
    var style = el("style", "", CSS);
    root.appendChild(style);

    var history = [];
    var busy = false;
    var turn = 0;
    var examples = []; // example questions for the scope, from /api/messages
    // What answers are confined to: the data-document id, else the id the server resolved for the
    // page's canonical URL (once /api/messages has answered), else that URL as `page`, else nothing.
    var scope = opts.document ? { document: opts.document } : opts.page ? { page: opts.page } : {};
    var scopeError = "";

    var bubble = null;
    if (!opts.inline) {
      bubble = el("button", "bubble");
      bubble.type = "button";
      bubble.setAttribute("aria-expanded", "false");
      bubble.setAttribute("aria-controls", "panel");
      bubble.appendChild(icon("chat"));
      root.appendChild(bubble);
    }
    var panel = el("section", "panel " + (opts.inline ? "inline" : "floating"));
    panel.id = "panel";
    panel.setAttribute("role", opts.inline ? "region" : "dialog");
    panel.setAttribute("aria-labelledby", "title");
    if (!opts.inline) panel.hidden = true;
    var header = el("header");
    var title = el("h2");
    title.id = "title";
    var newChat = el("button", "new");
    newChat.type = "button";
    header.append(title, newChat);
    var close = null;
    if (!opts.inline) {
      close = el("button", "close", "\u00d7");
      close.type = "button";
      header.appendChild(close);
    }
    var log = el("div", "log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    var intro = el("div", "intro"); // stays when a new chat clears the log
    var welcome = el("p", "welcome");
    var exampleBox = el("div", "examples");
    intro.append(welcome, exampleBox);
    log.appendChild(intro);
    var form = el("form");
    var label = el("label", "sr");
    label.htmlFor = "q";
    var input = el("textarea");
    input.id = "q";
    input.rows = 1;
    input.maxLength = 2000;
    var send = el("button", "send");
    send.type = "submit";
    form.append(label, input, send);
    panel.append(header, log, form);
    root.appendChild(panel);

    function applyStrings() {
      title.textContent = opts.title || S.title;
      newChat.textContent = S.new_chat;
      welcome.textContent = scopeError || S.welcome;
      welcome.className = scopeError ? "welcome scope-error" : "welcome";
      exampleBox.textContent = "";
      if (!scopeError) {
        examples.forEach(function (q) {
          var b = el("button", "example", q);
          b.type = "button";
          b.addEventListener("click", function () {
            if (busy || input.disabled) return;
            input.value = q;
            form.requestSubmit();
          });
          exampleBox.appendChild(b);
        });
      }
      exampleBox.hidden = !examples.length || !!scopeError || log.lastChild !== intro;
      label.textContent = S.question_label;
      input.placeholder = S.placeholder;
      send.textContent = S.send;
      if (bubble) bubble.setAttribute("aria-label", S.open_chat);
      if (close) close.setAttribute("aria-label", S.close_chat);
    }
    applyStrings();
    function query(params) {
      return Object.keys(params).map(function (k) { return "&" + k + "=" + encodeURIComponent(params[k]); }).join("");
    }
    fetch(API + "/api/messages?lang=" + encodeURIComponent(opts.lang) + query(scope))
      .then(function (r) {
        if (r.ok) return r.json();
        if (r.status !== 404 && r.status !== 422) return null; // e.g. the index is still loading: keep the defaults
        // an unknown or ambiguous data-document: every question would fail the same way, so say it now
        return r.json().catch(function () { return null; }).then(function (err) {
          scopeError = (err && typeof err.error === "string" && err.error) || S.error_generic;
          input.disabled = true;
          send.disabled = true;
          applyStrings();
          return null;
        });
      })
      .then(function (m) {
        if (!m) return;
        Object.keys(S).forEach(function (k) { if (typeof m[k] === "string") S[k] = m[k]; });
        if (Array.isArray(m.examples)) examples = m.examples.filter(function (q) { return typeof q === "string" && q; }).slice(0, 5);
        if (!opts.document && typeof m.document === "string" && m.document) scope = { document: m.document };
        applyStrings();
      })
      .catch(function () { /* keep the English defaults */ });

    function open() {
      panel.hidden = false;
      bubble.setAttribute("aria-expanded", "true");
      input.focus();
    }
    function shut() {
      panel.hidden = true;
      bubble.setAttribute("aria-expanded", "false");
      bubble.focus();
    }
    if (bubble) {
      bubble.addEventListener("click", function () { if (panel.hidden) open(); else shut(); });
      close.addEventListener("click", shut);
      panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { ev.stopPropagation(); shut(); } });
    }
    newChat.addEventListener("click", function () {
      history = [];
      while (log.lastChild !== intro) log.removeChild(log.lastChild);
      exampleBox.hidden = !examples.length || !!scopeError;
      input.focus();
    });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var q = input.value.trim();
      if (!q || busy) return;
      input.value = "";
      ask(q);
    });

    function scrollDown() { log.scrollTop = log.scrollHeight; }

    // The latest question/answer pairs that fit both limits (JS counts UTF-16 units: never more than the server).
    function recentHistory() {
      var out = [], chars = 0;
      for (var i = history.length - 2; i >= 0 && out.length + 2 <= MAX_HISTORY; i -= 2) {
        chars += history[i].content.length + history[i + 1].content.length;
        if (chars > MAX_HISTORY_CHARS) break;
        out.unshift(history[i], history[i + 1]);
      }
      return out;
    }

    function addMessage(cls, text) {
      var box = el("div", "msg " + cls);
      var body = el("div", "text", text);
      box.appendChild(body);
      log.appendChild(box);
      scrollDown();
      return { box: box, text: body };
    }

    // "[1] Article, paragraph 4": the server's label, in the answer's language (chatbot/labels.py)
    function citationLabel(c) {
      var text = typeof c.label === "string" && c.label ? c.label : c.author || c.heading || c.document_title || "";
      if (text.length > 120) text = text.slice(0, 119).trim() + "\u2026";
      return "[" + c.id + "] " + text;
    }

    function renderAnswer(msg, answer) {
      var n = ++turn;
      var details = {};
      var status = answer.status || (answer.answered ? "answered" : "not_found");
      msg.box.className = "msg bot done" + (status === "unsure" ? " unsure" : status === "not_found" ? " refusal" : "");
      msg.text.textContent = "";
      var ids = {};
      (answer.citations || []).forEach(function (c) { ids[c.id] = true; });
      var text = String(answer.answer), last = 0;
      systemMarkers(text).forEach(function (m) {
        var part = m.id;
        if (!ids[part]) return; // stays in the text around it
        if (m.start > last) msg.text.appendChild(document.createTextNode(text.slice(last, m.start)));
        last = m.end;
        var link = el("button", "cite", "[" + part + "]");
        link.type = "button";
        link.setAttribute("aria-label", S.sources + " " + part);
        link.addEventListener("click", function () {
          var d = details[part];
          d.open = true;
          d.scrollIntoView({ block: "nearest", behavior: "smooth" });
          d.querySelector("summary").focus();
        });
        msg.text.appendChild(link);
      });
      if (last < text.length) msg.text.appendChild(document.createTextNode(text.slice(last)));
      (answer.notes || []).forEach(function (note) { msg.box.appendChild(el("p", "note", String(note))); });
      if (answer.citations && answer.citations.length) {
        var sources = el("div", "sources");
        sources.appendChild(el("p", "sources-label", S.sources));
        answer.citations.forEach(function (c) {
          var d = el("details");
          d.id = "src-" + n + "-" + c.id;
          if (typeof c.document === "string") d.setAttribute("data-document", c.document);
          d.appendChild(el("summary", "", citationLabel(c)));
          if (status === "unsure" && c.quoted === true) d.open = true; // the reader judges a "not sure" candidate
          var p = el("p", "passage");
          var text = String(c.text), h = c.highlight;
          if (h && h[0] < h[1]) {
            p.append(document.createTextNode(text.slice(0, h[0])), el("mark", "", text.slice(h[0], h[1])), document.createTextNode(text.slice(h[1])));
          } else {
            p.textContent = text;
          }
          d.appendChild(p);
          details[c.id] = d;
          sources.appendChild(d);
        });
        msg.box.appendChild(sources);
      }
      msg.box.appendChild(rating(answer));
    }

    function rating(answer) {
      var row = el("div", "rate");
      [["up", S.feedback_up], ["down", S.feedback_down]].forEach(function (r) {
        var b = el("button");
        b.appendChild(icon(r[0]));
        b.type = "button";
        b.setAttribute("aria-label", r[1]);
        b.title = r[1];
        b.addEventListener("click", function () {
          fetch(API + "/api/feedback", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ question: answer.question, answer: answer.answer, rating: r[0] })
          }).catch(function () {});
          row.textContent = S.feedback_thanks;
        });
        row.appendChild(b);
      });
      return row;
    }

    async function ask(question) {
      busy = true;
      send.disabled = true;
      exampleBox.hidden = true;
      addMessage("user", question);
      var msg = addMessage("bot pending", S.thinking);
      var started = false;
      try {
        var res = await fetch(API + "/api/ask/stream", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
          body: JSON.stringify(Object.assign({ question: question, history: recentHistory() }, scope))
        });
        if (!res.ok) {
          var err = await res.json().catch(function () { return null; });
          throw new Error((err && typeof err.error === "string" && err.error) || S.error_generic);
        }
        var final = null;
        await readEvents(res, function (name, data) {
          if (name === "delta") {
            if (!started) { started = true; msg.box.className = "msg bot"; msg.text.textContent = ""; }
            msg.text.textContent += data.text;
            scrollDown();
          } else if (name === "final") {
            final = data;
          } else if (name === "error") {
            throw new Error(typeof data.error === "string" ? data.error : S.error_generic);
          }
        });
        if (!final) throw new Error(S.error_generic);
        renderAnswer(msg, final);
        history.push({ role: "user", content: question }, { role: "assistant", content: String(final.answer) });
        history = history.slice(-MAX_HISTORY);
      } catch (e) {
        msg.box.className = "msg bot done error";
        msg.text.textContent = e instanceof TypeError ? S.error_network : String(e.message || S.error_generic);
      } finally {
        busy = false;
        send.disabled = false;
        scrollDown();
        input.focus();
      }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
