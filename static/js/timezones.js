/* The profile's time zone: a find box above the grouped select narrows its options to those containing the text
 * (region or place, case-insensitive), keeping the chosen one. No inline script (CSP). */
(function () {
  "use strict";
  var select = document.getElementById("id_time_zone");
  var find = document.getElementById("tz-find");
  if (!select || !find) return;
  find.hidden = false;
  document.querySelector("label[for=tz-find]").hidden = false;
  var status = document.getElementById("tz-find-status");
  find.addEventListener("input", function () {
    var needle = find.value.trim().toLowerCase().replace(/ /g, "_");
    var shown = 0;
    select.querySelectorAll("optgroup").forEach(function (group) {
      var any = false;
      group.querySelectorAll("option").forEach(function (option) {
        var match = !needle || option.value.toLowerCase().indexOf(needle) >= 0 || option.selected;
        option.hidden = !match;
        option.disabled = !match && !option.selected;
        if (match) { any = true; shown += 1; }
      });
      group.hidden = !any;
    });
    status.textContent = needle ? shown + " time zones match." : "";
  });
})();
