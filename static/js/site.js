/* Every page (the admin's too): marks the document as scripted (before the first paint: this file is loaded without
 * defer), wires the phone menu's button, and makes regions that scroll sideways reachable by keyboard.
 *
 * Below 720 px the menu folds behind "Menu" only when this script runs, so without it the links stay reachable.
 * A table wider than its box scrolls inside it; when nothing in it can take the focus, the box itself becomes a
 * Tab stop (a named region), so the arrow keys can scroll it (WCAG 2.1.1). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var SCROLLERS = ".table-wrap, .table-scroll, .quality-scroll, .chat-table-wrap, .inline-group, #changelist .results";
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

  function menu() {
    var button = document.getElementById("nav-toggle");
    var nav = document.getElementById("main-nav");
    if (!button || !nav) return;
    function set(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    }
    button.addEventListener("click", function () { set(button.getAttribute("aria-expanded") !== "true"); });
    nav.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true" && button.offsetParent) {
        set(false);
        button.focus();
      }
    });
  }

  function reachable(box) {
    return Array.prototype.some.call(box.querySelectorAll(FOCUSABLE), function (node) {
      return node.tabIndex >= 0 && !node.disabled && node.type !== "hidden" && node.getClientRects().length > 0;
    });
  }

  function regionName(box) {
    var heading = box.closest("section, .module, fieldset, .card");
    var title = heading && heading.querySelector("h1, h2, h3, caption, legend");
    var caption = box.querySelector("caption");
    var text = (caption || title || {}).textContent || "";
    return (text.trim() || "Table") + " (scrolls sideways)";
  }

  function scrollers() {
    document.querySelectorAll(SCROLLERS).forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      var own = box.hasAttribute("data-scroll-region");
      if (scrolls && !own && !reachable(box)) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-region", "");
        if (!box.getAttribute("role")) box.setAttribute("role", "region");
        if (!box.getAttribute("aria-label")) box.setAttribute("aria-label", regionName(box));
      } else if (!scrolls && own) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-region");
      }
    });
  }

  var resizing = null;
  function start() {
    menu();
    scrollers();
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(scrollers, 150);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  window.enreachScrollers = scrollers;  // pages that fill tables later call it again
})();
