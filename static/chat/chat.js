/* The chat page: conversations, messages, the streamed answer and its grounding, over the chat API.
 *
 * Everything the server or the model wrote is put in the page with textContent, except an answer's content_html,
 * which the server rendered from Markdown and sanitised (chat/markdown.py).
 */
(function () {
  "use strict";

  var root = document.getElementById("chat");
  if (!root) return;
  var API = root.dataset.api;
  var PAGE = root.dataset.page;
  var CSRF = root.dataset.csrf;
  var TIME_ZONE = root.dataset.timeZone || "UTC";
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    sessionId: root.dataset.session ? parseInt(root.dataset.session, 10) : null,
    sessions: [],
    context: {},
    busy: false,
    controller: null,
    lastQuestion: "",
  };

  // --- HTTP ------------------------------------------------------------------------------------------------------

  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (method !== "GET") options.headers["X-CSRFToken"] = CSRF;
    return fetch(url, options).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(errorText(data, response.status));
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  function errorText(data, status) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && typeof data === "object") {
      var parts = [];
      Object.keys(data).forEach(function (key) {
        var value = data[key];
        parts.push(key + ": " + (Array.isArray(value) ? value.join(" ") : String(value)));
      });
      if (parts.length) return parts.join("; ");
    }
    return "The request failed (HTTP " + status + ").";
  }

  function allPages(url) {
    return request("GET", url).then(function (page) {
      if (!page.next) return page.results;
      return allPages(page.next).then(function (rest) { return page.results.concat(rest); });
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // --- Conversations ---------------------------------------------------------------------------------------------

  function loadSessions() {
    return allPages(API + "sessions/?limit=100").then(function (sessions) {
      state.sessions = sessions;
      renderSessions();
    });
  }

  function renderSessions() {
    var list = $("chat-sessions");
    var needle = $("chat-search").value.trim().toLowerCase();
    list.textContent = "";
    var shown = state.sessions.filter(function (s) { return !needle || s.title.toLowerCase().indexOf(needle) !== -1; });
    shown.forEach(function (session) {
      var item = el("li");
      var link = el("a", "chat-session-link", session.title);
      link.href = PAGE + session.id + "/";
      link.dataset.id = session.id;
      if (session.id === state.sessionId) link.setAttribute("aria-current", "page");
      var when = el("span", "muted chat-session-when", formatTime(session.updated));
      link.appendChild(when);
      item.appendChild(link);
      list.appendChild(item);
    });
    var empty = $("chat-sessions-empty");
    empty.hidden = shown.length > 0;
    empty.textContent = state.sessions.length ? "No conversation matches." : "No conversations yet.";
  }

  // Times in the user's time zone (their profile's, as the rest of the site): "2026-06-01 21:00 GMT+9".
  var timeFormat = (function () {
    try {
      return new Intl.DateTimeFormat("en-GB", {
        timeZone: TIME_ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        hourCycle: "h23", timeZoneName: "short",
      });
    } catch (error) {
      return null;  // an unknown zone: UTC below
    }
  })();

  function formatTime(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    if (!timeFormat) return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    var part = {};
    timeFormat.formatToParts(date).forEach(function (p) { part[p.type] = p.value; });
    return part.year + "-" + part.month + "-" + part.day + " " + part.hour + ":" + part.minute + " " + part.timeZoneName;
  }

  function currentSession() {
    for (var i = 0; i < state.sessions.length; i++) if (state.sessions[i].id === state.sessionId) return state.sessions[i];
    return null;
  }

  function openSession(id, push) {
    state.sessionId = id;
    if (push) history.pushState({ id: id }, "", id ? PAGE + id + "/" : PAGE);
    hideError();
    $("chat-messages").textContent = "";
    var session = currentSession();
    showSession(session);
    renderSessions();
    if (!id) return Promise.resolve();
    return allPages(API + "sessions/" + id + "/messages/?limit=100").then(function (messages) {
      if (state.sessionId !== id) return;
      messages.forEach(function (message) { appendMessage(message); });
      updateEmpty();
      scrollDown();
    }).catch(function (error) { showError(error.message, false); });
  }

  function showSession(session) {
    $("chat-title").textContent = session ? session.title : "New chat";
    document.title = (session ? session.title + " · " : "") + "Chat · Enreach tools";
    $("chat-session-actions").hidden = !session;
    $("chat-rename-form").hidden = true;
    $("chat-title").hidden = false;
    state.context = session && session.context ? session.context : {};
    renderContext();
    updateEmpty();
  }

  function createSession() {
    return request("POST", API + "sessions/", { context: state.context }).then(function (session) {
      state.sessions.unshift(session);
      state.sessionId = session.id;
      history.pushState({ id: session.id }, "", PAGE + session.id + "/");
      $("chat-session-actions").hidden = false;
      renderSessions();
      return session;
    });
  }

  function refreshSession(id) {
    return request("GET", API + "sessions/" + id + "/").then(function (fresh) {
      state.sessions = state.sessions.filter(function (s) { return s.id !== id; });
      state.sessions.unshift(fresh);  // newest activity first
      if (state.sessionId === id) {
        $("chat-title").textContent = fresh.title;
        document.title = fresh.title + " · Chat · Enreach tools";
      }
      renderSessions();
    });
  }

  // --- Rename and delete -----------------------------------------------------------------------------------------

  $("chat-rename").addEventListener("click", function () {
    var session = currentSession();
    if (!session) return;
    $("chat-rename-input").value = session.title;
    $("chat-title").hidden = true;
    $("chat-session-actions").hidden = true;
    $("chat-rename-form").hidden = false;
    $("chat-rename-input").focus();
    $("chat-rename-input").select();
  });

  function endRename() {
    $("chat-rename-form").hidden = true;
    $("chat-title").hidden = false;
    $("chat-session-actions").hidden = !currentSession();
    $("chat-rename").focus();
  }

  $("chat-rename-cancel").addEventListener("click", endRename);
  $("chat-rename-input").addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); endRename(); }
  });
  $("chat-rename-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var id = state.sessionId;
    request("PATCH", API + "sessions/" + id + "/", { title: $("chat-rename-input").value })
      .then(function () { return refreshSession(id); })
      .then(endRename)
      .catch(function (error) { showError(error.message, false); });
  });

  $("chat-delete").addEventListener("click", function () {
    var session = currentSession();
    if (!session || !window.confirm("Delete “" + session.title + "” and all its messages?")) return;
    request("DELETE", API + "sessions/" + session.id + "/").then(function () {
      state.sessions = state.sessions.filter(function (s) { return s.id !== session.id; });
      openSession(null, true);
      $("chat-input").focus();
    }).catch(function (error) { showError(error.message, false); });
  });

  $("chat-new").addEventListener("click", function (event) {
    event.preventDefault();
    openSession(null, true);
    $("chat-input").focus();
  });

  $("chat-search").addEventListener("input", renderSessions);
  $("chat-sessions").addEventListener("click", function (event) {
    var link = event.target.closest("a[data-id]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    if (state.busy) return;
    openSession(parseInt(link.dataset.id, 10), true);
  });
  window.addEventListener("popstate", function () {
    var match = location.pathname.match(/\/(\d+)\/$/);
    openSession(match ? parseInt(match[1], 10) : null, false);
  });

  // --- Context variables -----------------------------------------------------------------------------------------

  function renderContext() {
    var rows = $("chat-context-rows");
    rows.textContent = "";
    var keys = Object.keys(state.context || {});
    keys.forEach(function (key) {
      var value = state.context[key];
      addContextRow(key, typeof value === "string" ? value : JSON.stringify(value));
    });
    if (!keys.length) addContextRow("", "");
    $("chat-context-count").textContent = keys.length ? "(" + keys.length + " set)" : "";
    $("chat-context-message").textContent = "";
  }

  function addContextRow(key, value) {
    var rows = $("chat-context-rows");
    var index = rows.children.length + 1;
    var row = el("div", "chat-context-row");
    var name = el("input");
    name.type = "text";
    name.className = "chat-context-name";
    name.value = key;
    name.maxLength = 100;
    name.placeholder = "name, e.g. site";
    name.setAttribute("aria-label", "Variable " + index + " name");
    var val = el("input");
    val.type = "text";
    val.className = "chat-context-value";
    val.value = value;
    val.maxLength = 1000;
    val.placeholder = "value, e.g. FRA1";
    val.setAttribute("aria-label", "Variable " + index + " value");
    var remove = el("button", "secondary", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", "Remove variable " + index);
    remove.addEventListener("click", function () { row.remove(); });
    row.appendChild(name);
    row.appendChild(val);
    row.appendChild(remove);
    rows.appendChild(row);
    return name;
  }

  function readContext() {
    var context = {};
    document.querySelectorAll("#chat-context-rows .chat-context-row").forEach(function (row) {
      var name = row.querySelector(".chat-context-name").value.trim();
      if (name) context[name] = row.querySelector(".chat-context-value").value;
    });
    return context;
  }

  $("chat-context-add").addEventListener("click", function () { addContextRow("", "").focus(); });
  $("chat-context-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var context = readContext();
    var message = $("chat-context-message");
    if (!state.sessionId) {
      // No conversation yet: the variables go with the one the first question starts.
      state.context = context;
      message.textContent = "Saved; they apply from your first question.";
      return;
    }
    var id = state.sessionId;
    request("PATCH", API + "sessions/" + id + "/", { context: context }).then(function (session) {
      state.context = session.context;
      state.sessions = state.sessions.map(function (s) { return s.id === id ? session : s; });
      renderContext();
      $("chat-context-message").textContent = "Saved.";
    }).catch(function (error) { message.textContent = error.message; });
  });

  // --- Messages --------------------------------------------------------------------------------------------------

  function updateEmpty() {
    $("chat-empty").hidden = $("chat-messages").children.length > 0;
  }

  function scrollDown() {
    var list = $("chat-messages");
    if (getComputedStyle(list).overflowY !== "visible") {
      list.scrollTop = list.scrollHeight;  // a wide screen: the conversation scrolls in its own box
      return;
    }
    var last = list.lastElementChild;
    if (last && last.scrollIntoView) last.scrollIntoView({ block: "end" });
  }

  function appendMessage(message) {
    if (message.role === "user") {
      var item = el("li", "chat-message chat-user");
      item.appendChild(el("div", "chat-who", "You"));
      item.appendChild(el("div", "chat-text", message.content));
      $("chat-messages").appendChild(item);
      return item;
    }
    if (message.role !== "assistant") return null;  // tool results show as the answer's look-ups
    if (message.tool_calls && message.tool_calls.length && !message.content) return null;
    var answer = el("li", "chat-message chat-assistant");
    fillAnswer(answer, message);
    $("chat-messages").appendChild(answer);
    return answer;
  }

  function fillAnswer(item, message) {
    item.textContent = "";
    item.classList.remove("streaming");
    item.dataset.id = message.id;
    item.appendChild(el("div", "chat-who", "Assistant"));
    var body = el("div", "chat-text chat-markdown");
    body.innerHTML = message.content_html;  // rendered and sanitised by the server
    item.appendChild(body);
    if (message.interrupted) item.appendChild(el("p", "chat-interrupted", "Interrupted: " + message.interrupted));
    var grounding = message.grounding || {};
    if (grounding.export || (grounding.lookups && grounding.lookups.length)) {
      item.appendChild(groundingPanel(grounding));
    }
  }

  function groundingPanel(grounding, streaming) {
    var panel = el("div", "chat-grounding");
    var basis = el("p", "chat-grounding-export muted");
    if (streaming) {
      basis.textContent = "Look-ups so far (the export they rest on shows when the answer is complete):";
    } else if (grounding.export) {
      basis.appendChild(document.createTextNode("Based on the "));
      var link = el("a", null, "CMDB of export #" + grounding.export.id);
      link.href = "/exports/";
      basis.appendChild(link);
      basis.appendChild(document.createTextNode(", " + formatTime(grounding.export.finished)));
    } else {
      basis.textContent = "No export was available for this answer.";
    }
    panel.appendChild(basis);
    var lookups = el("div", "chat-lookups");
    (grounding.lookups || []).forEach(function (lookup) { lookups.appendChild(lookupPanel(lookup)); });
    panel.appendChild(lookups);
    return panel;
  }

  function describeArguments(args) {
    var parts = [];
    Object.keys(args || {}).forEach(function (key) {
      var value = args[key];
      parts.push(key + "=" + (typeof value === "string" ? value : JSON.stringify(value)));
    });
    return parts.join(", ");
  }

  var COLUMNS = ["Status", "Site", "Cluster", "Tenant", "Role", "IP Address"];

  function lookupPanel(lookup) {
    var details = el("details", "chat-lookup");
    var summary = el("summary");
    summary.appendChild(el("code", "chat-lookup-tool", lookup.tool));
    var args = describeArguments(lookup.arguments);
    if (args) summary.appendChild(el("span", "chat-lookup-args", " " + args));
    var count;
    if (lookup.error) count = "error: " + lookup.error;
    else if (lookup.total === null || lookup.total === undefined) count = lookup.returned + " rows";
    else count = lookup.total + (lookup.total === 1 ? " row matched" : " rows matched");
    if (!lookup.error && lookup.rows.length && lookup.rows.length < (lookup.total || 0)) {
      count += " (" + lookup.rows.length + " shown)";
    }
    summary.appendChild(el("span", "chat-lookup-count", " — " + count));
    details.appendChild(summary);

    if (lookup.rows && lookup.rows.length) {
      var columns = COLUMNS.filter(function (c) {
        return lookup.rows.some(function (row) { return row.columns && row.columns[c]; });
      });
      var wrap = el("div", "chat-table-wrap");
      var table = el("table", "chat-rows");
      var head = el("tr");
      ["Name", "Type"].concat(columns).forEach(function (c) { head.appendChild(el("th", null, c)); });
      var historyHead = el("th");
      historyHead.appendChild(el("span", "visually-hidden", "History"));
      head.appendChild(historyHead);
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      lookup.rows.forEach(function (row) {
        var tr = el("tr");
        var nameCell = el("td");
        if (row.netbox_url && /^https?:\/\//i.test(row.netbox_url)) {
          var a = el("a", null, row.name || "(unnamed)");
          a.href = row.netbox_url;
          a.rel = "noopener noreferrer";
          a.target = "_blank";
          a.title = "Open in NetBox";
          nameCell.appendChild(a);
        } else {
          nameCell.textContent = row.name || "(unnamed)";
        }
        tr.appendChild(nameCell);
        tr.appendChild(el("td", null, row.type === "vm" ? "VM" : row.type === "device" ? "Device" : ""));
        columns.forEach(function (c) { tr.appendChild(el("td", null, row.columns ? row.columns[c] || "" : "")); });
        var historyCell = el("td");
        var kind = row.type === "vm" ? "vms" : row.type === "device" ? "devices" : "";
        if (kind && /^\d+$/.test(String(row.netbox_id || ""))) {
          var history = el("a", "chat-history-link", "history");
          history.href = "/cmdb/" + kind + "/" + kind + "-" + row.netbox_id + "/";
          history.setAttribute("aria-label", "History of " + (row.name || "this object"));
          historyCell.appendChild(history);
        }
        tr.appendChild(historyCell);
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      wrap.appendChild(table);
      details.appendChild(wrap);
    } else if (lookup.groups && lookup.groups.length) {
      var list = el("ul", "chat-groups");
      lookup.groups.forEach(function (g) { list.appendChild(el("li", null, g.value + ": " + g.count)); });
      details.appendChild(el("p", "muted", "Grouped by " + lookup.group_by));
      details.appendChild(list);
    } else if (!lookup.error) {
      details.appendChild(el("p", "muted", "No rows to show."));
    }
    return details;
  }

  // --- Asking ----------------------------------------------------------------------------------------------------

  function showError(text, retry) {
    $("chat-error-text").textContent = text;
    $("chat-retry").hidden = !retry;
    $("chat-error").hidden = false;
  }

  function hideError() { $("chat-error").hidden = true; }

  function setBusy(busy) {
    state.busy = busy;
    $("chat-send").disabled = busy;
    $("chat-stop").hidden = !busy;
    root.classList.toggle("busy", busy);
  }

  function ask(content) {
    if (state.busy || !content.trim()) return;
    hideError();
    state.lastQuestion = content;
    setBusy(true);
    var ready = state.sessionId ? Promise.resolve() : createSession();
    ready.then(function () {
      // A retry asks the unanswered question again; the server does not store it twice, nor do we show it twice.
      var last = $("chat-messages").lastElementChild;
      var repeated = last && last.classList.contains("chat-user") && last.querySelector(".chat-text").textContent === content;
      if (!repeated) appendMessage({ role: "user", content: content });
      $("chat-input").value = "";
      updateEmpty();
      scrollDown();
      return stream(state.sessionId, content);
    }).catch(function (error) {
      showError(error.message, false);
    }).then(function () {
      setBusy(false);
      if (state.sessionId) refreshSession(state.sessionId).catch(function () {});
    });
  }

  function stream(id, content) {
    var controller = new AbortController();
    state.controller = controller;
    var answer = el("li", "chat-message chat-assistant streaming");
    answer.appendChild(el("div", "chat-who", "Assistant"));
    var text = el("div", "chat-text chat-streamed chat-streamed-raw");
    answer.appendChild(text);
    var status = el("p", "chat-status muted", "Thinking…");
    answer.appendChild(status);
    var lookups = { export: null, lookups: [] };
    var panel = null;
    var received = "";
    var finished = false;
    $("chat-messages").appendChild(answer);
    scrollDown();

    function showLookups() {
      if (panel) panel.remove();
      panel = groundingPanel(lookups, true);
      answer.appendChild(panel);
    }
    var rendered = false;

    var titled = false;

    function handle(kind, data) {
      if (!titled) {
        // The server names a new conversation after its first question: show that name now, not at the end.
        titled = true;
        refreshSession(id).catch(function () {});
      }
      if (kind === "delta") {
        received += data.content;
        if (!rendered) text.textContent = received;  // raw until the first rendering arrives
        status.textContent = "Answering…";
        scrollDown();
      } else if (kind === "html") {
        // The answer so far, rendered from Markdown and sanitised by the server (chat/markdown.py).
        rendered = true;
        text.classList.add("chat-markdown");
        text.classList.remove("chat-streamed-raw");
        text.innerHTML = data.content_html;
        scrollDown();
      } else if (kind === "tool") {
        status.textContent = "Looking up " + data.name + "…";
      } else if (kind === "lookup") {
        lookups.lookups.push(data);
        showLookups();
      } else if (kind === "message") {
        finished = true;
        fillAnswer(answer, data);
      } else if (kind === "error") {
        finished = true;
        if (data.message) fillAnswer(answer, data.message);
        else answer.remove();
        showError(data.detail, true);
      }
    }

    return fetch(API + "sessions/" + id + "/messages/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": CSRF },
      body: JSON.stringify({ content: content }),
      signal: controller.signal,
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!response.ok || type.indexOf("text/event-stream") === -1) {
        answer.remove();
        return response.json().catch(function () { return {}; }).then(function (data) {
          var retry = response.status === 503 || response.status === 504 || response.status === 502;
          showError(errorText(data, response.status), retry);
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          var frames = buffer.split("\n\n");
          buffer = frames.pop();
          frames.forEach(function (frame) {
            var kind = "message";
            var data = "";
            frame.split("\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) kind = line.slice(7);
              else if (line.indexOf("data: ") === 0) data += line.slice(6);
            });
            if (data) handle(kind, JSON.parse(data));
          });
          return pump();
        });
      }
      return pump().then(function () {
        if (!finished) interrupted("The connection closed before the reply was complete.", true);
      });
    }).catch(function (error) {
      if (error.name === "AbortError") interrupted("Stopped by you; the part that arrived is kept.", false);
      else interrupted("The connection dropped: " + error.message, true);
    }).then(function () {
      state.controller = null;
    });

    function interrupted(reason, retry) {
      answer.classList.remove("streaming");
      status.remove();
      if (!received && !lookups.lookups.length) text.textContent = "";
      answer.appendChild(el("p", "chat-interrupted", "Interrupted: " + reason));
      if (retry) showError(reason, true);
    }
  }

  $("chat-composer").addEventListener("submit", function (event) {
    event.preventDefault();
    ask($("chat-input").value);
  });
  $("chat-input").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask($("chat-input").value);
    }
  });
  $("chat-stop").addEventListener("click", function () {
    if (state.controller) state.controller.abort();
    $("chat-input").focus();
  });
  $("chat-retry").addEventListener("click", function () {
    hideError();
    ask(state.lastQuestion);
  });

  // --- The user's own key ----------------------------------------------------------------------------------------

  function keyState(data) {
    $("chat-key-state").textContent = data.configured ? "set, " : "none";
    if (data.configured) $("chat-key-state").appendChild(el("code", null, data.hint));
    $("chat-key-remove").hidden = !data.configured;
    $("chat-key-value").value = "";
  }

  $("chat-key-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var value = $("chat-key-value").value.trim();
    if (!value) { $("chat-key-message").textContent = "Paste a key first."; return; }
    request("PUT", API + "key/", { value: value }).then(function (data) {
      keyState(data);
      $("chat-key-message").textContent = "Saved. Reload to use it if the assistant was not configured.";
    }).catch(function (error) { $("chat-key-message").textContent = error.message; });
  });
  $("chat-key-remove").addEventListener("click", function () {
    request("DELETE", API + "key/").then(function () {
      keyState({ configured: false });
      $("chat-key-message").textContent = "Removed.";
      $("chat-key-value").focus();
    }).catch(function (error) { $("chat-key-message").textContent = error.message; });
  });

  // --- Start -----------------------------------------------------------------------------------------------------

  loadSessions().then(function () {
    return openSession(state.sessionId, false);
  }).catch(function (error) { showError(error.message, false); });
})();
