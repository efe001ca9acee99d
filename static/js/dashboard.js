// Home dashboard: NetBox's status from the cached status API. A failure turns the NetBox alert red.
(function () {
  "use strict";
  const status = document.getElementById("netbox-status");
  const alert = document.getElementById("alert-netbox");
  if (!status || !status.dataset.statusUrl) return;
  const fail = (detail) => {
    status.textContent = alert ? "Unreachable: see the alert above." : "Unreachable: " + detail;
    status.className = "error";
    if (alert) {
      alert.textContent = "";
      const strong = document.createElement("strong");
      strong.textContent = "NetBox is unreachable. ";
      alert.append(strong, detail);
      alert.hidden = false;
    }
  };
  fetch(status.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(async (response) => {
      let body = {};
      try { body = await response.json(); } catch (e) { body = {}; }
      if (!response.ok) { fail(body.detail || "HTTP " + response.status); return; }
      status.textContent = "NetBox " + body.netbox_version + " answers: " + body.devices + " devices, " +
        body.virtual_machines + " virtual machines.";
      status.className = "ok";
    })
    .catch(() => fail("no answer from the status API"));
})();
