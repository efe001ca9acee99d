/* The CMDB grid: server-side paging, filtering and sorting over /api/cmdb/<dataset>/rows/.
 *
 * The view (column order, hidden columns, widths, sort, filters, search, density, page size) is kept per dataset
 * and saved on the server (PUT /api/cmdb/<dataset>/view/) a moment after each change, so a reload or another
 * browser shows the same grid. Plain JavaScript: no library, no inline script or style (CSP); widths are set
 * through the CSSOM. */
(function () {
  "use strict";

  var root = document.getElementById("cmdb");
  var configNode = document.getElementById("cmdb-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);
  var csrf = root.dataset.csrf;
  var OPS = {
    text: [["contains", "contains"], ["eq", "="], ["empty", "empty"], ["notempty", "not empty"]],
    range: [["contains", "contains"], ["eq", "="], ["gte", "≥"], ["lte", "≤"], ["between", "between"],
            ["empty", "empty"], ["notempty", "not empty"]],
  };
  var VALUE_OPS = ["contains", "eq", "gte", "lte", "between"];

  var $ = function (id) { return document.getElementById(id); };
  var grid = $("cmdb-grid");
  var state = { dataset: config.dataset, offset: 0, count: 0, rows: [], request: 0, controller: null };
  var timers = {};

  function debounce(name, delay, fn) {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(fn, delay);
  }

  function ds() { return config.datasets[state.dataset]; }
  function view() { return ds().view; }
  function columnsByKey() {
    var map = {};
    ds().columns.forEach(function (c) { map[c.key] = c; });
    return map;
  }

  /* Every known column in the saved order (new columns at the end), and those shown. */
  function orderedKeys() {
    var known = columnsByKey();
    var keys = view().columns.filter(function (k) { return known[k]; });
    ds().columns.forEach(function (c) { if (keys.indexOf(c.key) < 0) keys.push(c.key); });
    return keys;
  }
  function visibleKeys() {
    var hidden = view().hidden;
    return orderedKeys().filter(function (k) { return hidden.indexOf(k) < 0; });
  }

  /* --- the request ------------------------------------------------------------------------------------------- */

  function queryParams(paged) {
    var v = view();
    var p = new URLSearchParams();
    if (config.run) p.set("run", config.run);
    if (v.q.trim()) p.set("q", v.q.trim());
    if (v.ordering.length) p.set("ordering", v.ordering.join(","));
    p.set("fields", visibleKeys().join(","));
    Object.keys(v.filters).forEach(function (key) {
      var f = v.filters[key];
      if (!columnsByKey()[key]) return;
      if (f.op === "empty") p.append(key + "__empty", "true");
      else if (f.op === "notempty") p.append(key + "__empty", "false");
      else if (f.op === "between") {
        if (f.value.trim()) p.append(key + "__gte", f.value.trim());
        if (f.value2.trim()) p.append(key + "__lte", f.value2.trim());
      } else if (f.value.trim()) p.append(f.op === "contains" ? key : key + "__" + f.op, f.value.trim());
    });
    if (paged) {
      p.set("limit", v.page_size);
      p.set("offset", state.offset);
    }
    return p;
  }

  function load() {
    var number = ++state.request;
    if (state.controller) state.controller.abort();
    state.controller = new AbortController();
    root.classList.add("cmdb-loading");
    updateDownloads();
    fetch(config.api + state.dataset + "/rows/?" + queryParams(true).toString(), {
      headers: { Accept: "application/json" }, credentials: "same-origin", signal: state.controller.signal,
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (answer) {
      if (number !== state.request) return;
      root.classList.remove("cmdb-loading");
      if (!answer.ok) {
        $("cmdb-error").textContent = errorText(answer.body);
        return;
      }
      $("cmdb-error").textContent = "";
      state.count = answer.body.count;
      state.rows = answer.body.results;
      renderBody(answer.body.columns);
      renderStatus();
    }).catch(function (error) {
      if (error.name === "AbortError") return;
      root.classList.remove("cmdb-loading");
      $("cmdb-error").textContent = "Could not load the rows: " + error.message;
    });
  }

  function errorText(body) {
    if (!body || typeof body !== "object") return "The request failed.";
    if (body.detail) return body.detail;
    return Object.keys(body).map(function (k) { return k + ": " + [].concat(body[k]).join(" "); }).join("; ");
  }

  function updateDownloads() {
    var p = queryParams(false);
    ["csv", "xlsx"].forEach(function (format) {
      p.set("format", format);
      $("cmdb-download-" + format).href = config.api + state.dataset + "/download/?" + p.toString();
    });
  }

  /* --- saving the view ---------------------------------------------------------------------------------------- */

  var saves = 0;  // the latest change's number: an older save's answer must not report the view as saved

  function save() {
    var dataset = state.dataset;
    var v = view();
    var change = ++saves;
    v.columns = orderedKeys();
    debounce("save", 400, function () {
      fetch(config.api + dataset + "/view/", {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(config.datasets[dataset].view),
      }).then(function (response) {
        if (change === saves) root.dataset.saved = response.ok ? "yes" : "failed";
      });
    });
    root.dataset.saved = "pending";
  }

  function changed(reload) {
    save();
    if (reload !== false) {
      state.offset = 0;
      load();
    }
  }

  /* --- rendering ---------------------------------------------------------------------------------------------- */

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderTabs() {
    document.querySelectorAll(".cmdb-tab").forEach(function (tab) {
      var name = tab.dataset.dataset;
      tab.setAttribute("aria-selected", name === state.dataset ? "true" : "false");
      tab.classList.toggle("active", name === state.dataset);
      var info = config.datasets[name];
      tab.querySelector(".cmdb-tab-count").textContent = info ? info.count.toLocaleString("en") : "";
    });
  }

  function renderHead() {
    var known = columnsByKey();
    var keys = visibleKeys();
    var v = view();
    var colgroup = grid.querySelector("colgroup");
    var labels = grid.querySelector("tr.cmdb-labels");
    var filters = grid.querySelector("tr.cmdb-filters");
    colgroup.replaceChildren();
    labels.replaceChildren();
    filters.replaceChildren();
    keys.forEach(function (key) {
      var column = known[key];
      var col = el("col", { "data-key": key });
      if (v.widths[key]) col.style.width = v.widths[key] + "px";
      colgroup.appendChild(col);

      var th = el("th", { "data-key": key, scope: "col" });
      var button = el("button", { type: "button", class: "cmdb-sort", title: "Sort (Shift-click: add to the sort)" });
      button.appendChild(el("span", { class: "cmdb-label" }, column.label));
      var position = v.ordering.indexOf(key);
      var descending = v.ordering.indexOf("-" + key);
      var indicator = el("span", { class: "cmdb-indicator" });
      if (position >= 0 || descending >= 0) {
        var rank = (position >= 0 ? position : descending) + 1;
        indicator.textContent = (position >= 0 ? "▲" : "▼") + (v.ordering.length > 1 ? rank : "");
        th.setAttribute("aria-sort", position >= 0 ? "ascending" : "descending");
      }
      button.appendChild(indicator);
      button.addEventListener("click", function (event) { sortBy(key, event.shiftKey || $("cmdb-multisort").checked); });
      th.appendChild(button);
      var handle = el("span", { class: "cmdb-resize", "aria-hidden": "true" });
      handle.addEventListener("pointerdown", function (event) { startResize(event, key, col, th); });
      th.appendChild(handle);
      labels.appendChild(th);

      filters.appendChild(filterCell(column));
    });
  }

  function filterCell(column) {
    var v = view();
    var current = v.filters[column.key] || { op: "contains", value: "", value2: "" };
    var th = el("th", { "data-key": column.key });
    var box = el("div", { class: "cmdb-filter" });
    var select = el("select", { "aria-label": "Filter " + column.label, class: "cmdb-op" });
    (column.kind === "text" ? OPS.text : OPS.range).forEach(function (pair) {
      var option = el("option", { value: pair[0] }, pair[1]);
      if (pair[0] === current.op) option.selected = true;
      select.appendChild(option);
    });
    var input = el("input", { type: "text", class: "cmdb-value", "aria-label": column.label + " value", maxlength: "200" });
    input.value = current.value || "";
    var input2 = el("input", { type: "text", class: "cmdb-value2", "aria-label": column.label + " up to", maxlength: "200" });
    input2.value = current.value2 || "";
    function sync() {
      input.hidden = VALUE_OPS.indexOf(select.value) < 0;
      input2.hidden = select.value !== "between";
      input.placeholder = select.value === "between" ? "from" : "";
      input2.placeholder = "to";
    }
    function update(delay) {
      sync();
      var f = { op: select.value, value: input.value, value2: input2.value };
      if (f.op === "contains" && !f.value.trim()) delete v.filters[column.key];
      else v.filters[column.key] = f;
      debounce("filter", delay, function () { changed(); });
    }
    select.addEventListener("change", function () { update(0); });
    input.addEventListener("input", function () { update(350); });
    input2.addEventListener("input", function () { update(350); });
    sync();
    box.appendChild(select);
    box.appendChild(input);
    box.appendChild(input2);
    th.appendChild(box);
    return th;
  }

  function renderBody(columns) {
    var tbody = grid.querySelector("tbody");
    tbody.replaceChildren();
    if (!state.rows.length) {
      var empty = el("tr", { class: "cmdb-empty" });
      empty.appendChild(el("td", { colspan: String(Math.max(1, columns.length)) }, "No rows match."));
      tbody.appendChild(empty);
      return;
    }
    var fragment = document.createDocumentFragment();
    state.rows.forEach(function (row) {
      var tr = el("tr", { "data-row-id": row.row_id, tabindex: "0" });
      columns.forEach(function (column) {
        var value = row[column.key];
        var td = el("td", { "data-key": column.key }, value === null || value === undefined ? "" : String(value));
        if (column.kind === "number") td.className = "num";
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    tbody.appendChild(fragment);
  }

  function renderStatus() {
    var v = view();
    var first = state.count ? state.offset + 1 : 0;
    var last = Math.min(state.offset + v.page_size, state.count);
    $("cmdb-count").textContent = first.toLocaleString("en") + "–" + last.toLocaleString("en") + " of " +
      state.count.toLocaleString("en") + " rows";
    var pages = Math.max(1, Math.ceil(state.count / v.page_size));
    $("cmdb-page").textContent = "Page " + (Math.floor(state.offset / v.page_size) + 1) + " of " + pages;
    $("cmdb-prev").disabled = state.offset <= 0;
    $("cmdb-next").disabled = state.offset + v.page_size >= state.count;
    var known = columnsByKey();
    $("cmdb-sort-info").textContent = v.ordering.length ? "Sorted by " + v.ordering.map(function (name) {
      var key = name.replace(/^-/, "");
      return (known[key] ? known[key].label : key) + (name.charAt(0) === "-" ? " ↓" : " ↑");
    }).join(", ") : "";
  }

  function renderColumnsPanel() {
    var list = $("cmdb-columns-list");
    var known = columnsByKey();
    var hidden = view().hidden;
    list.replaceChildren();
    orderedKeys().forEach(function (key, index, keys) {
      var li = el("li", { "data-key": key });
      var label = el("label", { class: "cmdb-inline" });
      var box = el("input", { type: "checkbox", "data-key": key });
      box.checked = hidden.indexOf(key) < 0;
      box.addEventListener("change", function () {
        var v = view();
        v.hidden = v.hidden.filter(function (k) { return k !== key; });
        if (!box.checked) v.hidden.push(key);
        if (visibleKeys().length === 0) { v.hidden.pop(); box.checked = true; return; }
        renderHead();
        changed();
      });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + known[key].label));
      li.appendChild(label);
      [["↑", -1, "Move up"], ["↓", 1, "Move down"]].forEach(function (move) {
        var button = el("button", { type: "button", class: "cmdb-move", "aria-label": move[2] + " " + known[key].label }, move[0]);
        button.disabled = (move[1] < 0 && index === 0) || (move[1] > 0 && index === keys.length - 1);
        button.addEventListener("click", function () {
          var order = orderedKeys();
          var at = order.indexOf(key);
          order.splice(at, 1);
          order.splice(at + move[1], 0, key);
          view().columns = order;
          renderColumnsPanel();
          renderHead();
          changed(false);
          load();
        });
        li.appendChild(button);
      });
      list.appendChild(li);
    });
  }

  function renderAll() {
    var v = view();
    renderTabs();
    renderHead();
    renderColumnsPanel();
    $("cmdb-q").value = v.q;
    $("cmdb-density").value = v.density;
    $("cmdb-page-size").value = String(v.page_size);
    grid.classList.toggle("cmdb-compact", v.density === "compact");
  }

  /* --- interactions ------------------------------------------------------------------------------------------- */

  function sortBy(key, add) {
    var v = view();
    var ascending = v.ordering.indexOf(key);
    var descending = v.ordering.indexOf("-" + key);
    if (add) {
      if (ascending >= 0) v.ordering[ascending] = "-" + key;
      else if (descending >= 0) v.ordering.splice(descending, 1);
      else v.ordering.push(key);
    } else if (ascending >= 0 && v.ordering.length === 1) v.ordering = ["-" + key];
    else if (descending >= 0 && v.ordering.length === 1) v.ordering = [];
    else v.ordering = [key];
    renderHead();
    changed();
  }

  function startResize(event, key, col, th) {
    event.preventDefault();
    event.stopPropagation();
    var startX = event.clientX;
    var startWidth = th.getBoundingClientRect().width;
    function move(e) {
      var width = Math.max(40, Math.min(1200, Math.round(startWidth + e.clientX - startX)));
      col.style.width = width + "px";
      view().widths[key] = width;
    }
    function up() {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      save();
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }

  function openRow(rowId) {
    var p = new URLSearchParams();
    if (config.run) p.set("run", config.run);
    fetch(config.api + state.dataset + "/rows/" + encodeURIComponent(rowId) + "/?" + p.toString(), {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    }).then(function (response) { return response.json().then(function (body) { return { ok: response.ok, body: body }; }); })
      .then(function (answer) {
        if (!answer.ok) { $("cmdb-error").textContent = errorText(answer.body); return; }
        var body = answer.body;
        $("cmdb-detail-title").textContent = body.row.name || body.row_id;
        var link = $("cmdb-detail-netbox");
        link.hidden = !body.netbox_url;
        link.href = body.netbox_url || "#";
        var list = $("cmdb-detail-list");
        list.replaceChildren();
        body.columns.forEach(function (column) {
          var value = body.row[column.key];
          list.appendChild(el("dt", {}, column.label));
          list.appendChild(el("dd", { "data-key": column.key }, value === null || value === undefined ? "" : String(value)));
        });
        $("cmdb-detail").hidden = false;
        $("cmdb-detail-close").focus();
      });
  }

  document.querySelectorAll(".cmdb-tab").forEach(function (tab) {
    tab.addEventListener("click", function () {
      if (tab.dataset.dataset === state.dataset) return;
      state.dataset = tab.dataset.dataset;
      state.offset = 0;
      $("cmdb-detail").hidden = true;
      renderAll();
      save();
      load();
    });
  });
  $("cmdb-q").addEventListener("input", function (event) {
    view().q = event.target.value;
    debounce("search", 300, function () { changed(); });
  });
  $("cmdb-density").addEventListener("change", function (event) {
    view().density = event.target.value;
    grid.classList.toggle("cmdb-compact", event.target.value === "compact");
    save();
  });
  $("cmdb-page-size").addEventListener("change", function (event) {
    view().page_size = parseInt(event.target.value, 10);
    changed();
  });
  $("cmdb-columns-toggle").addEventListener("click", function () {
    var panel = $("cmdb-columns");
    panel.hidden = !panel.hidden;
    $("cmdb-columns-toggle").setAttribute("aria-expanded", panel.hidden ? "false" : "true");
  });
  $("cmdb-reset").addEventListener("click", function () {
    var dataset = state.dataset;
    fetch(config.api + dataset + "/view/", {
      method: "DELETE", credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrf },
    }).then(function (response) { return response.json(); }).then(function (fresh) {
      config.datasets[dataset].view = fresh;
      state.offset = 0;
      renderAll();
      load();
    });
  });
  $("cmdb-prev").addEventListener("click", function () {
    state.offset = Math.max(0, state.offset - view().page_size);
    load();
  });
  $("cmdb-next").addEventListener("click", function () {
    state.offset += view().page_size;
    load();
  });
  grid.querySelector("tbody").addEventListener("click", function (event) {
    var tr = event.target.closest("tr[data-row-id]");
    if (tr) openRow(tr.dataset.rowId);
  });
  grid.querySelector("tbody").addEventListener("keydown", function (event) {
    var tr = event.target.closest("tr[data-row-id]");
    if (tr && event.key === "Enter") openRow(tr.dataset.rowId);
  });
  $("cmdb-detail-close").addEventListener("click", function () { $("cmdb-detail").hidden = true; });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") $("cmdb-detail").hidden = true;
  });

  if (!config.datasets[state.dataset]) state.dataset = "merged";
  renderAll();
  load();
})();
