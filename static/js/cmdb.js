/* The CMDB grid: server-side paging, filtering and sorting over /api/cmdb/<dataset>/rows/.
 *
 * - An ARIA grid with one Tab stop (a roving tabindex over its cells): arrows, Home/End (Ctrl: first/last row),
 *   Page Up/Down (a screen, then the previous/next page), Enter opens a row (or sorts by a header),
 *   Alt+Down filters a column. Name is frozen on the left while the grid scrolls sideways.
 * - The row detail, the column chooser and the filter editor are modal <dialog>s: focus stays inside, Escape
 *   closes them and focus goes back where it was.
 * - The whole view (dataset, filters, sort, columns, search) is in the URL, so a copied link opens the same rows;
 *   it is also saved per user and dataset on the server (PUT /api/cmdb/<dataset>/view/) a moment after each change,
 *   and can be saved under a name, personal or shared (/api/cmdb/views/).
 * Plain JavaScript: no library, no inline script or style (CSP); sizes are set through the CSSOM. */
(function () {
  "use strict";

  var root = document.getElementById("cmdb");
  var configNode = document.getElementById("cmdb-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);
  var csrf = root.dataset.csrf;
  var OPS = {
    text: [["contains", "contains"], ["eq", "is"], ["empty", "is empty"], ["notempty", "is not empty"]],
    range: [["contains", "contains"], ["eq", "is"], ["gte", "≥"], ["lte", "≤"], ["between", "between"],
            ["empty", "is empty"], ["notempty", "is not empty"]],
  };
  var OP_WORDS = { contains: "contains", eq: "is", gte: "≥", lte: "≤", between: "between", empty: "is empty",
                   notempty: "is not empty", "in": "is" };
  var VALUE_OPS = ["contains", "eq", "gte", "lte", "between"];
  var FACET_PICK = 50;  // columns with at most this many distinct values offer them to pick
  var NAME = "name";

  var $ = function (id) { return document.getElementById(id); };
  var grid = $("cmdb-grid");
  var wrap = $("cmdb-grid-wrap");
  var state = {
    dataset: config.dataset, offset: 0, count: 0, rows: [], columns: [], request: 0, controller: null,
    focus: { row: 0, col: 0 }, autoWidths: {}, views: [],
  };
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
  function labelOf(key) { var c = columnsByKey()[key]; return c ? c.label : key; }

  /* Every known column in the saved order (new columns at the end, Name first), and those shown. */
  function orderedKeys() {
    var known = columnsByKey();
    var keys = view().columns.filter(function (k) { return known[k]; });
    ds().columns.forEach(function (c) { if (keys.indexOf(c.key) < 0) keys.push(c.key); });
    if (keys.indexOf(NAME) > 0) { keys.splice(keys.indexOf(NAME), 1); keys.unshift(NAME); }
    return keys;
  }
  function visibleKeys() {
    var hidden = view().hidden;
    return orderedKeys().filter(function (k) { return hidden.indexOf(k) < 0; });
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") options.headers["X-CSRFToken"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(errorText(data));
        return data;
      });
    });
  }

  function errorText(body) {
    if (!body || typeof body !== "object") return "The request failed.";
    if (body.detail) return body.detail;
    return Object.keys(body).map(function (k) { return k + ": " + [].concat(body[k]).join(" "); }).join("; ");
  }

  /* --- the view as query parameters (the API's and the page URL's) ----------------------------------------- */

  function filterParams(p, filters) {
    Object.keys(filters).forEach(function (key) {
      var f = filters[key];
      if (!columnsByKey()[key]) return;
      if (f.op === "empty") p.append(key + "__empty", "true");
      else if (f.op === "notempty") p.append(key + "__empty", "false");
      else if (f.op === "in") (f.values || []).forEach(function (value) { p.append(key + "__in", value); });
      else if (f.op === "between") {
        if ((f.value || "").trim()) p.append(key + "__gte", f.value.trim());
        if ((f.value2 || "").trim()) p.append(key + "__lte", f.value2.trim());
      } else if ((f.value || "").trim()) p.append(f.op === "contains" ? key : key + "__" + f.op, f.value.trim());
    });
  }

  function queryParams(paged, without) {
    var v = view();
    var p = new URLSearchParams();
    if (config.run) p.set("run", config.run);
    if (v.q.trim()) p.set("q", v.q.trim());
    if (v.ordering.length) p.set("ordering", v.ordering.join(","));
    p.set("fields", visibleKeys().join(","));
    var filters = {};
    Object.keys(v.filters).forEach(function (k) { if (k !== without) filters[k] = v.filters[k]; });
    filterParams(p, filters);
    if (paged) {
      p.set("limit", v.page_size);
      p.set("offset", state.offset);
    }
    return p;
  }

  function defaultOrder(keys) {
    var contract = ds().columns.map(function (c) { return c.key; });
    return keys.join(",") === contract.join(",");
  }

  /* The page's own URL: dataset, search, sort, filters and (unless all, in contract order) the columns. */
  function pageParams() {
    var v = view();
    var p = new URLSearchParams();
    p.set("dataset", state.dataset);
    if (v.q.trim()) p.set("q", v.q.trim());
    if (v.ordering.length) p.set("ordering", v.ordering.join(","));
    var shown = visibleKeys();
    if (!defaultOrder(shown)) p.set("columns", shown.join(","));
    filterParams(p, v.filters);
    return p;
  }

  function updateUrl() {
    var url = config.page + "?" + pageParams().toString();
    if (location.pathname + location.search !== url) history.replaceState(null, "", url);
  }

  /* A view from the page URL's parameters (null when it carries none). */
  function viewFromUrl(params, dataset) {
    var known = {};
    config.datasets[dataset].columns.forEach(function (c) { known[c.key] = c; });
    var v = { q: params.get("q") || "", ordering: [], filters: {} };
    (params.get("ordering") || "").split(",").forEach(function (item) {
      if (item && known[item.replace(/^-/, "")]) v.ordering.push(item);
    });
    if (params.has("columns")) {
      var shown = params.get("columns").split(",").filter(function (k) { return known[k]; });
      if (shown.length) {
        v.columns = shown.concat(Object.keys(known).filter(function (k) { return shown.indexOf(k) < 0; }));
        v.hidden = Object.keys(known).filter(function (k) { return shown.indexOf(k) < 0; });
      }
    } else {
      v.columns = [];
      v.hidden = [];
    }
    params.forEach(function (value, name) {
      var parts = name.split("__");
      var key = parts[0];
      var lookup = parts[1] || "contains";
      if (!known[key] || ["dataset", "q", "ordering", "columns", "view"].indexOf(name) >= 0) return;
      var current = v.filters[key];
      if (lookup === "in") {
        if (!current || current.op !== "in") current = v.filters[key] = { op: "in", value: "", value2: "", values: [] };
        current.values.push(value);
      } else if (lookup === "empty") {
        v.filters[key] = { op: value === "false" ? "notempty" : "empty", value: "", value2: "" };
      } else if (lookup === "gte" && current && current.op === "lte") {
        v.filters[key] = { op: "between", value: value, value2: current.value };
      } else if (lookup === "lte" && current && current.op === "gte") {
        v.filters[key] = { op: "between", value: current.value, value2: value };
      } else if (["contains", "eq", "gte", "lte"].indexOf(lookup) >= 0) {
        v.filters[key] = { op: lookup, value: value, value2: "" };
      }
    });
    return v;
  }

  function applyView(dataset, partial) {
    var v = config.datasets[dataset].view;
    Object.keys(partial).forEach(function (k) { v[k] = partial[k]; });
  }

  /* --- loading the rows ------------------------------------------------------------------------------------- */

  function load(then) {
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
      state.columns = answer.body.columns;
      renderHead();
      renderBody();
      renderStatus();
      root.dataset.loaded = String(number);
      if (then) then();
    }).catch(function (error) {
      if (error.name === "AbortError") return;
      root.classList.remove("cmdb-loading");
      $("cmdb-error").textContent = "Could not load the rows: " + error.message;
    });
  }

  function updateDownloads() {
    var p = queryParams(false);
    ["csv", "xlsx"].forEach(function (format) {
      p.set("format", format);
      $("cmdb-download-" + format).href = config.api + state.dataset + "/download/?" + p.toString();
    });
  }

  /* --- saving the view -------------------------------------------------------------------------------------- */

  var saves = 0;  // the latest change's number: an older save's answer must not report the view as saved

  function save() {
    var dataset = state.dataset;
    var change = ++saves;
    view().columns = orderedKeys();
    updateUrl();
    debounce("save", 400, function () {
      request("PUT", config.api + dataset + "/view/", config.datasets[dataset].view).then(function () {
        if (change === saves) root.dataset.saved = "yes";
      }).catch(function () { if (change === saves) root.dataset.saved = "failed"; });
    });
    root.dataset.saved = "pending";
  }

  function changed(reload) {
    save();
    renderChips();
    if (reload !== false) {
      state.offset = 0;
      load();
    }
  }

  /* --- rendering -------------------------------------------------------------------------------------------- */

  function renderTabs() {
    document.querySelectorAll(".cmdb-tab").forEach(function (tab) {
      var name = tab.dataset.dataset;
      var selected = name === state.dataset;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      tab.tabIndex = selected ? 0 : -1;
      tab.classList.toggle("active", selected);
      var info = config.datasets[name];
      tab.querySelector(".cmdb-tab-count").textContent = info ? info.count.toLocaleString("en") : "";
    });
    $("cmdb-panel").setAttribute("aria-labelledby", "cmdb-tab-" + state.dataset);
    $("cmdb-views-dataset").textContent = $("cmdb-tab-" + state.dataset).firstChild.textContent.trim().toLowerCase();
  }

  function widthOf(key) {
    var saved = view().widths[key];
    if (saved) return saved;
    var auto = state.autoWidths[state.dataset] || {};
    return auto[key] || 160;
  }

  /* Widths for columns without a saved one, from their label and the first page's values (once per dataset). */
  function measure() {
    if (state.autoWidths[state.dataset] || !state.rows.length) return;
    var widths = {};
    state.columns.forEach(function (column) {
      var longest = column.label.length + 3;
      state.rows.forEach(function (row) {
        var value = row[column.key];
        var text = value === null || value === undefined ? "" : String(value);
        longest = Math.max(longest, Math.min(40, text.split("\n")[0].length));
      });
      widths[column.key] = Math.round(Math.max(72, Math.min(340, longest * 7.6 + 26)));
    });
    state.autoWidths[state.dataset] = widths;
  }

  function renderHead() {
    measure();
    var keys = state.columns.map(function (c) { return c.key; });
    var v = view();
    var colgroup = grid.querySelector("colgroup");
    var labels = grid.querySelector("tr.cmdb-labels");
    colgroup.replaceChildren();
    labels.replaceChildren();
    labels.setAttribute("aria-rowindex", "1");
    var total = 0;
    state.columns.forEach(function (column, index) {
      var key = column.key;
      var col = el("col", { "data-key": key });
      var width = widthOf(key);
      total += width;
      col.style.width = width + "px";
      colgroup.appendChild(col);

      var th = el("th", { "data-key": key, role: "columnheader", tabindex: "-1", "aria-colindex": String(index + 1) });
      if (key === NAME) th.classList.add("cmdb-frozen");
      var sort = el("span", { class: "cmdb-sort" });
      sort.appendChild(el("span", { class: "cmdb-label" }, column.label));
      var position = v.ordering.indexOf(key);
      var descending = v.ordering.indexOf("-" + key);
      var indicator = el("span", { class: "cmdb-indicator", "aria-hidden": "true" });
      th.setAttribute("aria-sort", "none");
      if (position >= 0 || descending >= 0) {
        var rank = (position >= 0 ? position : descending) + 1;
        indicator.textContent = (position >= 0 ? "▲" : "▼") + (v.ordering.length > 1 ? rank : "");
        th.setAttribute("aria-sort", position >= 0 ? "ascending" : "descending");
      }
      sort.appendChild(indicator);
      th.appendChild(sort);
      var filtered = !!v.filters[key];
      var funnel = el("button", { type: "button", class: "cmdb-funnel" + (filtered ? " on" : ""), tabindex: "-1",
        "aria-label": "Filter " + column.label + (filtered ? " (filtered)" : ""), title: "Filter " + column.label }, "▾");
      funnel.addEventListener("click", function (event) {
        event.stopPropagation();
        openFilter(key, th);
      });
      th.appendChild(funnel);
      var handle = el("span", { class: "cmdb-resize", "aria-hidden": "true" });
      handle.addEventListener("pointerdown", function (event) { startResize(event, key, col); });
      handle.addEventListener("click", function (event) { event.stopPropagation(); });
      th.appendChild(handle);
      th.addEventListener("click", function (event) {
        sortBy(key, event.shiftKey || $("cmdb-multisort").checked);
      });
      labels.appendChild(th);
    });
    grid.style.width = total + "px";
    grid.setAttribute("aria-colcount", String(keys.length));
    grid.setAttribute("aria-label", $("cmdb-tab-" + state.dataset).firstChild.textContent.trim());
    grid.classList.toggle("cmdb-compact", v.density === "compact");
  }

  function renderBody() {
    var tbody = grid.querySelector("tbody");
    tbody.replaceChildren();
    grid.setAttribute("aria-rowcount", String(state.count + 1));
    if (!state.rows.length) {
      var empty = el("tr", { class: "cmdb-empty", "aria-rowindex": "2" });
      empty.appendChild(el("td", { colspan: String(Math.max(1, state.columns.length)), tabindex: "-1" }, "No rows match."));
      tbody.appendChild(empty);
    } else {
      var fragment = document.createDocumentFragment();
      state.rows.forEach(function (row, r) {
        var tr = el("tr", { "data-row-id": row.row_id, "aria-rowindex": String(state.offset + r + 2) });
        state.columns.forEach(function (column, c) {
          var value = row[column.key];
          var text = value === null || value === undefined ? "" : String(value);
          var td = el("td", { "data-key": column.key, tabindex: "-1", "aria-colindex": String(c + 1) });
          if (column.key === NAME) {
            td.classList.add("cmdb-frozen");
            var kind = row.row_id.split("-")[0];
            var base = config.netbox[kind];
            if (base && text) {
              var link = el("a", { href: base + row.row_id.split("-")[1] + "/", target: "_blank", rel: "noopener",
                                   tabindex: "-1", title: "Open in NetBox (new tab)" }, text);
              td.appendChild(link);
            } else td.textContent = text;
          } else td.textContent = text;
          if (column.kind === "number") td.classList.add("num");
          tr.appendChild(td);
        });
        fragment.appendChild(tr);
      });
      tbody.appendChild(fragment);
    }
    fitGrid();
    rove(false);
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
    $("cmdb-sort-info").textContent = v.ordering.length ? "Sorted by " + v.ordering.map(function (name) {
      return labelOf(name.replace(/^-/, "")) + (name.charAt(0) === "-" ? " ↓" : " ↑");
    }).join(", ") : "";
  }

  function filterText(key, f) {
    var label = labelOf(key);
    if (f.op === "empty" || f.op === "notempty") return label + " " + OP_WORDS[f.op];
    if (f.op === "in") return label + " is " + (f.values || []).map(function (v) { return v || "(empty)"; }).join(" or ");
    if (f.op === "between") return label + " between " + (f.value || "…") + " and " + (f.value2 || "…");
    return label + " " + OP_WORDS[f.op] + " " + f.value;
  }

  function renderChips() {
    var v = view();
    var list = $("cmdb-chip-list");
    list.replaceChildren();
    var any = false;
    if (v.q.trim()) {
      any = true;
      list.appendChild(chip("Search: " + v.q.trim(), null, function () {
        v.q = "";
        $("cmdb-q").value = "";
        changed();
      }));
    }
    Object.keys(v.filters).forEach(function (key) {
      if (!columnsByKey()[key]) return;
      any = true;
      list.appendChild(chip(filterText(key, v.filters[key]), key, function () {
        delete v.filters[key];
        renderHead();
        changed();
      }));
    });
    $("cmdb-chips").hidden = !any;
  }

  function chip(text, key, remove) {
    var li = el("li", { class: "cmdb-chip" });
    if (key) {
      var edit = el("button", { type: "button", class: "cmdb-chip-text", title: "Change this filter" }, text);
      edit.addEventListener("click", function () { openFilter(key, edit); });
      li.appendChild(edit);
    } else li.appendChild(el("span", { class: "cmdb-chip-text" }, text));
    var x = el("button", { type: "button", class: "cmdb-chip-remove", "aria-label": "Remove " + text }, "×");
    x.addEventListener("click", function () {
      remove();
      var next = $("cmdb-chip-list").querySelector("button") || $("cmdb-q");
      next.focus();
    });
    li.appendChild(x);
    return li;
  }

  function renderAll() {
    var v = view();
    renderTabs();
    $("cmdb-q").value = v.q;
    $("cmdb-density").value = v.density;
    $("cmdb-page-size").value = String(v.page_size);
    grid.classList.toggle("cmdb-compact", v.density === "compact");
    renderChips();
  }

  /* The grid takes the height the window leaves below it, and keeps its header and Name clear of a focused cell. */
  function fitGrid() {
    var top = wrap.getBoundingClientRect().top + window.scrollY;
    var pager = document.querySelector(".cmdb-pager");
    var below = (pager ? pager.offsetHeight : 40) + $("cmdb-grid-help").offsetHeight + 48;
    var height = Math.max(280, Math.round(window.innerHeight - Math.min(top, window.innerHeight * 0.45) - below));
    wrap.style.maxHeight = height + "px";
    var head = grid.querySelector("thead");
    var frozen = grid.querySelector("thead th.cmdb-frozen");
    wrap.style.scrollPaddingTop = (head ? head.offsetHeight : 0) + "px";
    wrap.style.scrollPaddingLeft = (frozen ? frozen.offsetWidth : 0) + "px";
  }

  /* --- the grid's keyboard: one Tab stop, a roving tabindex ------------------------------------------------- */

  function cellAt(row, col) {
    if (row < 0) return grid.querySelectorAll("thead th")[col] || null;
    var tr = grid.querySelectorAll("tbody tr")[row];
    return tr ? tr.children[Math.min(col, tr.children.length - 1)] || null : null;
  }

  function bodyRows() { return grid.querySelectorAll("tbody tr").length; }

  /* Give the focus position's cell the grid's Tab stop (and the focus, when ``focus``). */
  function rove(focus) {
    var rows = bodyRows();
    var cols = Math.max(1, state.columns.length);
    state.focus.row = Math.max(-1, Math.min(rows - 1, state.focus.row));
    state.focus.col = Math.max(0, Math.min(cols - 1, state.focus.col));
    grid.querySelectorAll("[tabindex='0']").forEach(function (node) { node.tabIndex = -1; });
    var cell = cellAt(state.focus.row, state.focus.col) || cellAt(-1, 0);
    if (!cell) return;
    cell.tabIndex = 0;
    if (focus) {
      cell.focus({ preventScroll: true });
      cell.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  function gridHasFocus() { return grid.contains(document.activeElement); }

  function pageRows() {
    var row = grid.querySelector("tbody tr");
    var height = row ? row.offsetHeight : 30;
    return Math.max(1, Math.floor((wrap.clientHeight - grid.querySelector("thead").offsetHeight) / height) - 1);
  }

  function moveTo(row, col) {
    state.focus.row = row;
    state.focus.col = col;
    rove(true);
  }

  function turnPage(delta, row) {
    var size = view().page_size;
    var offset = state.offset + delta * size;
    if (offset < 0 || offset >= state.count) return false;
    state.offset = offset;
    load(function () { moveTo(row === "last" ? bodyRows() - 1 : 0, state.focus.col); });
    return true;
  }

  grid.addEventListener("keydown", function (event) {
    if (event.target.closest("button.cmdb-funnel") && (event.key === "Enter" || event.key === " ")) return;
    var f = state.focus;
    var rows = bodyRows();
    var last = state.columns.length - 1;
    var handled = true;
    switch (event.key) {
      case "ArrowRight": moveTo(f.row, Math.min(last, f.col + 1)); break;
      case "ArrowLeft": moveTo(f.row, Math.max(0, f.col - 1)); break;
      case "ArrowDown":
        if (event.altKey && f.row < 0) openFilter(state.columns[f.col].key, cellAt(-1, f.col));
        else moveTo(Math.min(rows - 1, f.row + 1), f.col);
        break;
      case "ArrowUp": moveTo(Math.max(-1, f.row - 1), f.col); break;
      case "Home": moveTo(event.ctrlKey ? 0 : f.row, 0); break;
      case "End": moveTo(event.ctrlKey ? rows - 1 : f.row, last); break;
      case "PageDown":
        if (f.row >= rows - 1) turnPage(1, "first");
        else moveTo(Math.min(rows - 1, f.row + pageRows()), f.col);
        break;
      case "PageUp":
        if (f.row <= 0 && state.offset > 0) turnPage(-1, "last");
        else moveTo(Math.max(0, f.row - pageRows()), f.col);
        break;
      case "Enter":
      case " ":
        if (f.row < 0) sortBy(state.columns[f.col].key, event.shiftKey || $("cmdb-multisort").checked);
        else if (event.key === "Enter") {
          var tr = grid.querySelectorAll("tbody tr")[f.row];
          if (tr && tr.dataset.rowId) openRow(tr.dataset.rowId, cellAt(f.row, f.col));
        } else handled = false;
        break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  grid.addEventListener("focusin", function (event) {
    var cell = event.target.closest("th, td");
    if (!cell || !grid.contains(cell)) return;
    var tr = cell.parentElement;
    var row = tr.parentElement.tagName === "THEAD" ? -1 : Array.prototype.indexOf.call(tr.parentElement.children, tr);
    state.focus = { row: row, col: Array.prototype.indexOf.call(tr.children, cell) };
    if (cell.tabIndex !== 0) rove(false);
  });

  grid.querySelector("tbody").addEventListener("click", function (event) {
    if (event.target.closest("a")) return;  // the name's link opens NetBox
    var tr = event.target.closest("tr[data-row-id]");
    var cell = event.target.closest("td");
    if (tr) openRow(tr.dataset.rowId, cell);
  });

  /* --- dialogs: focus stays inside, Escape closes, focus goes back --------------------------------------------- */

  var returnFocus = {};

  function focusables(dialog) {
    return Array.prototype.filter.call(
      dialog.querySelectorAll("a[href], button, input, select, textarea, [tabindex='0']"),
      function (node) { return !node.disabled && !node.hidden && node.getClientRects().length > 0; }
    );
  }

  function openDialog(dialog, from, first) {
    returnFocus[dialog.id] = from || document.activeElement;
    if (!dialog.open) dialog.showModal();
    (first || focusables(dialog)[0] || dialog).focus();
  }

  function closeDialog(dialog) { if (dialog.open) dialog.close(); }

  document.querySelectorAll("dialog.cmdb-dialog").forEach(function (dialog) {
    dialog.addEventListener("keydown", function (event) {
      if (event.key !== "Tab") return;
      var items = focusables(dialog);
      if (!items.length) return;
      var first = items[0], last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { last.focus(); event.preventDefault(); }
      else if (!event.shiftKey && document.activeElement === last) { first.focus(); event.preventDefault(); }
    });
    dialog.addEventListener("close", function () {
      var back = returnFocus[dialog.id];
      if (back && document.contains(back)) back.focus();
      else rove(true);
    });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) closeDialog(dialog);  // a click on the backdrop
    });
  });

  /* --- the row detail ---------------------------------------------------------------------------------------- */

  function openRow(rowId, from) {
    var p = new URLSearchParams();
    if (config.run) p.set("run", config.run);
    request("GET", config.api + state.dataset + "/rows/" + encodeURIComponent(rowId) + "/?" + p.toString())
      .then(function (body) {
        $("cmdb-detail-title").textContent = body.row.name || body.row_id;
        var link = $("cmdb-detail-netbox");
        link.hidden = !body.netbox_url;
        link.href = body.netbox_url || "#";
        $("cmdb-detail-history").href = config.page + state.dataset + "/" + encodeURIComponent(body.row_id) + "/";
        var list = $("cmdb-detail-list");
        list.replaceChildren();
        body.columns.forEach(function (column) {
          var value = body.row[column.key];
          list.appendChild(el("dt", {}, column.label));
          list.appendChild(el("dd", { "data-key": column.key }, value === null || value === undefined ? "" : String(value)));
        });
        var dialog = $("cmdb-detail");
        dialog.dataset.rowId = body.row_id;
        openDialog(dialog, from, $("cmdb-detail-close"));
      })
      .catch(function (error) { $("cmdb-error").textContent = error.message; });
  }
  $("cmdb-detail-close").addEventListener("click", function () { closeDialog($("cmdb-detail")); });

  /* --- the column chooser ------------------------------------------------------------------------------------ */

  function announce(text) { $("cmdb-columns-live").textContent = text; }

  function moveColumn(key, to) {
    var order = orderedKeys();
    var at = order.indexOf(key);
    to = Math.max(1, Math.min(order.length - 1, to));  // Name stays first
    if (key === NAME || at === to) return false;
    order.splice(at, 1);
    order.splice(to, 0, key);
    view().columns = order;
    announce(labelOf(key) + " moved to position " + (to + 1) + " of " + order.length + ".");
    changed(false);
    load();
    return true;
  }

  function renderColumnsPanel(focus) {
    var list = $("cmdb-columns-list");
    var needle = $("cmdb-columns-search").value.trim().toLowerCase();
    var hidden = view().hidden;
    list.replaceChildren();
    var keys = orderedKeys();
    keys.forEach(function (key, index) {
      var label = labelOf(key);
      var li = el("li", { "data-key": key });
      li.hidden = !!needle && label.toLowerCase().indexOf(needle) < 0;
      var handle = el("span", { class: "cmdb-drag", "aria-hidden": "true", title: "Drag to move" }, key === NAME ? "" : "⠿");
      if (key !== NAME) handle.addEventListener("pointerdown", function (event) { startDrag(event, key, li); });
      li.appendChild(handle);
      var box = el("input", { type: "checkbox", "data-key": key, id: "cmdb-col-" + key });
      box.checked = hidden.indexOf(key) < 0;
      box.addEventListener("change", function () { show(key, box.checked); });
      box.addEventListener("keydown", function (event) {
        if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
          event.preventDefault();
          if (moveColumn(key, index + (event.key === "ArrowUp" ? -1 : 1))) renderColumnsPanel({ key: key, part: "box" });
        }
      });
      li.appendChild(box);
      li.appendChild(el("label", { for: "cmdb-col-" + key }, label + (key === NAME ? " (frozen, first)" : "")));
      if (key !== NAME) {
        [["↑", -1, "up"], ["↓", 1, "down"]].forEach(function (move) {
          var button = el("button", { type: "button", class: "cmdb-move", "data-move": move[2],
                                      "aria-label": "Move " + label + " " + move[2] }, move[0]);
          button.disabled = (move[1] < 0 && index <= 1) || (move[1] > 0 && index === keys.length - 1);
          button.addEventListener("click", function () {
            if (moveColumn(key, index + move[1])) renderColumnsPanel({ key: key, part: move[2] });
          });
          li.appendChild(button);
        });
      }
      list.appendChild(li);
    });
    if (focus) {
      var item = list.querySelector("li[data-key='" + focus.key + "']");
      var target = focus.part === "box" ? item.querySelector("input")
        : item.querySelector("button[data-move='" + focus.part + "']");
      if (target && target.disabled) target = item.querySelector("button.cmdb-move:not([disabled])");
      (target || item.querySelector("input")).focus();
    }
  }

  function show(key, visible) {
    var v = view();
    v.hidden = v.hidden.filter(function (k) { return k !== key; });
    if (!visible) v.hidden.push(key);
    if (visibleKeys().length === 0) { v.hidden.pop(); renderColumnsPanel(); return; }
    changed(false);
    load();
  }

  function startDrag(event, key, li) {
    event.preventDefault();
    var list = $("cmdb-columns-list");
    li.classList.add("dragging");
    var target = null;
    function over(e) {
      var items = Array.prototype.filter.call(list.children, function (item) { return !item.hidden; });
      target = null;
      items.forEach(function (item) {
        item.classList.remove("drop-before", "drop-after");
        var box = item.getBoundingClientRect();
        if (e.clientY >= box.top && e.clientY < box.bottom && item !== li) {
          target = { item: item, after: e.clientY > box.top + box.height / 2 };
        }
      });
      if (target) target.item.classList.add(target.after ? "drop-after" : "drop-before");
    }
    function up() {
      document.removeEventListener("pointermove", over);
      document.removeEventListener("pointerup", up);
      li.classList.remove("dragging");
      list.querySelectorAll(".drop-before, .drop-after").forEach(function (item) {
        item.classList.remove("drop-before", "drop-after");
      });
      if (!target) return;
      var order = orderedKeys();
      var to = order.indexOf(target.item.dataset.key) + (target.after ? 1 : 0);
      if (order.indexOf(key) < to) to -= 1;
      if (moveColumn(key, to)) renderColumnsPanel({ key: key, part: "box" });
    }
    document.addEventListener("pointermove", over);
    document.addEventListener("pointerup", up);
  }

  $("cmdb-columns-toggle").addEventListener("click", function () {
    $("cmdb-columns-search").value = "";
    renderColumnsPanel();
    openDialog($("cmdb-columns"), $("cmdb-columns-toggle"), $("cmdb-columns-search"));
  });
  $("cmdb-columns-close").addEventListener("click", function () { closeDialog($("cmdb-columns")); });
  $("cmdb-columns-search").addEventListener("input", function () { renderColumnsPanel(); });
  $("cmdb-columns-all").addEventListener("click", function () {
    view().hidden = [];
    renderColumnsPanel();
    changed(false);
    load();
  });
  $("cmdb-columns-none").addEventListener("click", function () {
    view().hidden = orderedKeys().filter(function (k) { return k !== NAME; });
    renderColumnsPanel();
    changed(false);
    load();
  });

  /* --- filters: a dialog per column, picking values with their counts where there are few --------------------- */

  var editing = { key: null };

  function fillColumnSelect(key) {
    var select = $("cmdb-filter-column");
    select.replaceChildren();
    visibleKeys().concat(orderedKeys().filter(function (k) { return visibleKeys().indexOf(k) < 0; }))
      .forEach(function (k) {
        var option = el("option", { value: k }, labelOf(k));
        if (k === key) option.selected = true;
        select.appendChild(option);
      });
  }

  function fillFilter(key) {
    editing.key = key;
    var column = columnsByKey()[key];
    var current = view().filters[key] || { op: "contains", value: "", value2: "" };
    $("cmdb-filter-title").textContent = "Filter: " + column.label;
    var op = $("cmdb-filter-op");
    op.replaceChildren();
    (column.kind === "text" ? OPS.text : OPS.range).forEach(function (pair) {
      var option = el("option", { value: pair[0] }, pair[1]);
      if (pair[0] === current.op) option.selected = true;
      op.appendChild(option);
    });
    $("cmdb-filter-value").value = current.op === "in" ? "" : current.value || "";
    $("cmdb-filter-value2").value = current.value2 || "";
    $("cmdb-filter-value").setAttribute("aria-label", column.label + " value");
    syncOp();
    loadFacets(key, current.op === "in" ? current.values || [] : []);
  }

  function syncOp() {
    var op = $("cmdb-filter-op").value;
    $("cmdb-filter-value").hidden = VALUE_OPS.indexOf(op) < 0;
    $("cmdb-filter-value2").hidden = op !== "between";
    $("cmdb-filter-value").placeholder = op === "between" ? "from" : "";
  }

  function loadFacets(key, picked) {
    var box = $("cmdb-facets");
    var list = $("cmdb-facet-list");
    box.hidden = true;
    list.replaceChildren();
    $("cmdb-match-legend").textContent = "Match";
    var p = queryParams(false, key);
    p.delete("fields");
    p.set("column", key);
    p.set("limit", String(FACET_PICK));
    request("GET", config.api + state.dataset + "/facets/?" + p.toString()).then(function (facet) {
      if (editing.key !== key || facet.distinct > FACET_PICK || !facet.values.length) return;
      facet.values.forEach(function (item, index) {
        var li = el("li");
        var id = "cmdb-facet-" + index;
        var input = el("input", { type: "checkbox", id: id, value: item.value });
        input.checked = picked.indexOf(item.value) >= 0;
        li.appendChild(input);
        var label = el("label", { for: id });
        label.appendChild(el("span", { class: "cmdb-facet-value" }, item.value || "(empty)"));
        label.appendChild(el("span", { class: "cmdb-facet-count" }, item.count.toLocaleString("en")));
        li.appendChild(label);
        list.appendChild(li);
      });
      $("cmdb-facets-note").textContent = "(" + facet.distinct + " values, rows under the other filters)";
      $("cmdb-match-legend").textContent = "Or match";
      box.hidden = false;
    }).catch(function () {});
  }

  function openFilter(key, from) {
    var dialog = $("cmdb-filter");
    fillColumnSelect(key);
    fillFilter(key);
    openDialog(dialog, from || document.activeElement, $("cmdb-filter-op"));
  }

  $("cmdb-filter-add").addEventListener("click", function () {
    var keys = visibleKeys();
    var key = keys.filter(function (k) { return !view().filters[k]; })[0] || keys[0];
    var dialog = $("cmdb-filter");
    fillColumnSelect(key);
    fillFilter(key);
    openDialog(dialog, $("cmdb-filter-add"), $("cmdb-filter-column"));
  });
  $("cmdb-filter-column").addEventListener("change", function (event) { fillFilter(event.target.value); });
  $("cmdb-filter-op").addEventListener("change", syncOp);
  $("cmdb-filter-close").addEventListener("click", function () { closeDialog($("cmdb-filter")); });
  $("cmdb-filter-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var key = editing.key;
    var v = view();
    var picked = Array.prototype.map.call($("cmdb-facet-list").querySelectorAll("input:checked"), function (i) {
      return i.value;
    });
    var f = { op: $("cmdb-filter-op").value, value: $("cmdb-filter-value").value, value2: $("cmdb-filter-value2").value };
    if (picked.length) v.filters[key] = { op: "in", value: "", value2: "", values: picked };
    else if (f.op === "empty" || f.op === "notempty" || f.value.trim() || (f.op === "between" && f.value2.trim())) {
      v.filters[key] = f;
    } else delete v.filters[key];
    closeDialog($("cmdb-filter"));
    renderHead();
    changed();
  });
  $("cmdb-filter-clear").addEventListener("click", function () {
    delete view().filters[editing.key];
    closeDialog($("cmdb-filter"));
    renderHead();
    changed();
  });
  $("cmdb-clear-all").addEventListener("click", function () {
    var v = view();
    v.filters = {};
    v.q = "";
    $("cmdb-q").value = "";
    renderHead();
    changed();
    $("cmdb-q").focus();
  });

  /* --- named views and the link ------------------------------------------------------------------------------ */

  function viewsMessage(text) { $("cmdb-views-message").textContent = text; }

  function loadViews() {
    return request("GET", config.api + "views/?dataset=" + state.dataset).then(function (views) {
      state.views = views;
      renderViews();
    });
  }

  function renderViews() {
    var list = $("cmdb-views-list");
    list.replaceChildren();
    state.views.forEach(function (named) {
      var li = el("li", { "data-view": String(named.id) });
      var pick = el("button", { type: "button", class: "link cmdb-view-pick" }, named.name);
      pick.addEventListener("click", function () { useView(named); });
      li.appendChild(pick);
      li.appendChild(el("span", { class: "muted cmdb-view-who" },
        named.mine ? (named.shared ? " · shared" : " · only you") : " · shared by " + named.owner));
      if (named.can_edit) {
        var update = el("button", { type: "button", class: "link", "aria-label": "Save the current view as " + named.name }, "update");
        update.addEventListener("click", function () {
          view().columns = orderedKeys();
          request("PATCH", config.api + "views/" + named.id + "/", { view: view() }).then(function () {
            viewsMessage("“" + named.name + "” now shows this view.");
            return loadViews();
          }).catch(function (error) { viewsMessage(error.message); });
        });
        var remove = el("button", { type: "button", class: "link danger-link", "aria-label": "Delete the view " + named.name }, "delete");
        remove.addEventListener("click", function () {
          if (!window.confirm("Delete the view “" + named.name + "”?")) return;
          request("DELETE", config.api + "views/" + named.id + "/").then(function () {
            viewsMessage("Deleted “" + named.name + "”.");
            return loadViews();
          }).then(function () { $("cmdb-views-name").focus(); }).catch(function (error) { viewsMessage(error.message); });
        });
        li.appendChild(update);
        li.appendChild(remove);
      }
      list.appendChild(li);
    });
    $("cmdb-views-empty").hidden = state.views.length > 0;
  }

  function useView(named) {
    if (config.datasets[named.dataset]) {
      state.dataset = named.dataset;
      applyView(named.dataset, named.view);
    }
    state.offset = 0;
    toggleViews(false);
    renderAll();
    save();
    load();
    viewsMessage("");
    $("cmdb-count").textContent = "View “" + named.name + "”";
  }

  function toggleViews(open) {
    var panel = $("cmdb-views");
    panel.hidden = !open;
    $("cmdb-views-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      $("cmdb-link").hidden = true;
      loadViews().catch(function (error) { viewsMessage(error.message); });
      $("cmdb-views-name").focus();
    }
  }

  $("cmdb-views-toggle").addEventListener("click", function () { toggleViews($("cmdb-views").hidden); });
  $("cmdb-views").addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      toggleViews(false);
      $("cmdb-views-toggle").focus();
    }
  });
  document.addEventListener("click", function (event) {
    if (!$("cmdb-views").hidden && !event.target.closest(".cmdb-popover-wrap")) toggleViews(false);
  });
  $("cmdb-views-form").addEventListener("submit", function (event) {
    event.preventDefault();
    view().columns = orderedKeys();
    request("POST", config.api + "views/", {
      name: $("cmdb-views-name").value, dataset: state.dataset, shared: $("cmdb-views-shared").checked, view: view(),
    }).then(function (named) {
      $("cmdb-views-name").value = "";
      viewsMessage("Saved “" + named.name + "”" + (named.shared ? ", shared with everyone." : ", for you."));
      return loadViews();
    }).catch(function (error) { viewsMessage(error.message); });
  });
  $("cmdb-copy-link").addEventListener("click", function () {
    updateUrl();
    var url = location.href;
    var field = $("cmdb-link");
    field.value = url;
    var shown = function (text) {
      field.hidden = false;
      field.select();
      viewsMessage(text);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(url).then(function () { viewsMessage("Link copied: paste it to a colleague."); },
        function () { shown("Copy this link:"); });
    } else shown("Copy this link:");
  });

  /* --- other interactions ------------------------------------------------------------------------------------ */

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
    var keep = gridHasFocus();
    save();
    state.offset = 0;
    load(function () { if (keep) rove(true); });
  }

  function startResize(event, key, col) {
    event.preventDefault();
    event.stopPropagation();
    var startX = event.clientX;
    var startWidth = widthOf(key);
    var startTotal = grid.getBoundingClientRect().width;
    function move(e) {
      var width = Math.max(40, Math.min(1200, Math.round(startWidth + e.clientX - startX)));
      col.style.width = width + "px";
      grid.style.width = (startTotal + width - startWidth) + "px";
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

  function selectDataset(name, focusTab) {
    if (name === state.dataset || !config.datasets[name]) return;
    state.dataset = name;
    state.offset = 0;
    state.focus = { row: 0, col: 0 };
    renderAll();
    save();
    load();
    if (focusTab) $("cmdb-tab-" + name).focus();
  }

  var tabs = Array.prototype.slice.call(document.querySelectorAll(".cmdb-tab"));
  tabs.forEach(function (tab, index) {
    tab.addEventListener("click", function () { selectDataset(tab.dataset.dataset, false); });
    tab.addEventListener("keydown", function (event) {
      var to = null;
      if (event.key === "ArrowRight") to = (index + 1) % tabs.length;
      else if (event.key === "ArrowLeft") to = (index - 1 + tabs.length) % tabs.length;
      else if (event.key === "Home") to = 0;
      else if (event.key === "End") to = tabs.length - 1;
      if (to === null) return;
      event.preventDefault();
      selectDataset(tabs[to].dataset.dataset, true);
    });
  });
  $("cmdb-q").addEventListener("input", function (event) {
    view().q = event.target.value;
    debounce("search", 300, function () { changed(); });
  });
  $("cmdb-density").addEventListener("change", function (event) {
    view().density = event.target.value;
    grid.classList.toggle("cmdb-compact", event.target.value === "compact");
    fitGrid();
    save();
  });
  $("cmdb-page-size").addEventListener("change", function (event) {
    view().page_size = parseInt(event.target.value, 10);
    changed();
  });
  $("cmdb-more-toggle").addEventListener("click", function () {
    var open = $("cmdb-more-toggle").getAttribute("aria-expanded") !== "true";
    $("cmdb-more-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    $("cmdb-more").classList.toggle("open", open);
    fitGrid();
  });
  $("cmdb-reset").addEventListener("click", function () {
    var dataset = state.dataset;
    request("DELETE", config.api + dataset + "/view/").then(function (fresh) {
      config.datasets[dataset].view = fresh;
      state.offset = 0;
      delete state.autoWidths[dataset];
      renderAll();
      updateUrl();
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
  $("skip-grid").addEventListener("click", function (event) {
    event.preventDefault();
    rove(true);
  });
  window.addEventListener("resize", function () { debounce("fit", 120, fitGrid); });

  /* --- start: a named view, else the URL's view, else the saved one ------------------------------------------- */

  var params = new URLSearchParams(location.search);
  var named = params.get("view");
  if (params.get("dataset") && config.datasets[params.get("dataset")]) state.dataset = params.get("dataset");
  if (!config.datasets[state.dataset]) state.dataset = "merged";
  // A URL naming the dataset (or any part of a view) is the whole view: what it leaves out is not there.
  var carries = false;
  params.forEach(function (value, name) { if (name !== "view") carries = true; });
  if (!named && carries) {
    applyView(state.dataset, viewFromUrl(params, state.dataset));
  }
  if (named && /^\d+$/.test(named)) {
    request("GET", config.api + "views/" + named + "/").then(function (found) {
      useView(found);
    }).catch(function (error) {
      $("cmdb-error").textContent = "That named view is gone or not shared with you (" + error.message + ").";
      renderAll();
      updateUrl();
      load();
    });
  } else {
    renderAll();
    updateUrl();
    load();
  }
})();
