// The exports pages: NetBox status, and the live progress of the active run (a bar, the step in plain words,
// elapsed time and an estimate from the previous run). No inline script: the page's data comes from data-*
// attributes and the JSON of Django's json_script.
(function () {
  "use strict";

  const number = (n) => Number(n || 0).toLocaleString("en-US");

  function netboxStatus() {
    const el = document.getElementById("netbox-status");
    if (!el) return;
    // A cached API call, so a slow NetBox never delays the page.
    fetch(el.dataset.url, { credentials: "same-origin" })
      .then(async (response) => {
        const body = await response.json();
        el.textContent = response.ok
          ? `NetBox ${body.netbox_version}: ${number(body.devices)} devices, ${number(body.virtual_machines)} VMs`
          : `NetBox unavailable: ${body.detail}`;
        el.classList.toggle("error", !response.ok);
      })
      .catch(() => {
        el.textContent = "NetBox status unknown";
      });
  }

  // Share of the run each step takes: the previous run's timings, else a rough guess.
  const DEFAULT_WEIGHTS = { fetch: 5, lookups: 0.5, reuse: 1, write: 3, save: 2 };

  function weights(run, config) {
    const previous = config.previous && config.previous.timings;
    const steps = Object.keys(config.steps).filter((name) => name !== "reuse" || run.mode !== "full");
    const result = {};
    for (const name of steps) {
      const seconds = previous && previous[name];
      result[name] = seconds && seconds > 0 ? seconds : (previous ? 0.05 : DEFAULT_WEIGHTS[name] || 1);
    }
    return result;
  }

  function stepFraction(run) {
    const p = run.progress || {};
    if (run.step === "fetch") {
      const total = (p.devices_total || 0) + (p.vms_total || 0);
      return total ? Math.min(1, ((p.devices_fetched || 0) + (p.vms_fetched || 0)) / total) : 0;
    }
    if (run.step === "write" && p.files_total) return Math.min(1, (p.files_written || 0) / p.files_total);
    return 0;
  }

  function percentOf(run, config) {
    if (run.status === "succeeded") return 100;
    if (run.status === "queued" || !run.step) return 0;
    const w = weights(run, config);
    const total = Object.values(w).reduce((a, b) => a + b, 0);
    let done = 0;
    for (const name of Object.keys(w)) {
      if (name in (run.timings || {})) done += w[name];
    }
    done += (w[run.step] || 0) * stepFraction(run);
    return Math.max(1, Math.min(99, Math.round((100 * done) / total)));
  }

  function detailOf(run, config) {
    const p = run.progress || {};
    if (run.status === "queued") return "Queued: waiting for a worker.";
    if (run.status === "succeeded") return `Finished: ${number(run.devices)} devices, ${number(run.vms)} VMs.`;
    if (run.status === "failed") return `Failed: ${run.error}`;
    const label = config.steps[run.step] || run.step || "Starting";
    const parts = [];
    if (run.step === "fetch" && (p.devices_total !== undefined || p.vms_total !== undefined)) {
      parts.push(`${number(p.devices_fetched)} of ${number(p.devices_total)} devices`);
      parts.push(`${number(p.vms_fetched)} of ${number(p.vms_total)} VMs`);
    } else if (run.step === "write" && p.files_total) {
      parts.push(`${number(p.files_written)} of ${number(p.files_total)} files`);
      if (p.rows_written) parts.push(`${number(p.rows_written)} rows`);
    }
    return parts.length ? `${label}: ${parts.join(", ")}.` : `${label}…`;
  }

  function seconds(value) {
    const s = Math.max(0, Math.round(value));
    return s < 90 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }

  function timeOf(run, config) {
    if (!run.started) return "";
    const end = run.finished ? new Date(run.finished) : new Date();
    const elapsed = (end - new Date(run.started)) / 1000;
    let text = `Elapsed ${seconds(elapsed)}`;
    const previous = config.previous;
    if (run.status === "running" && previous && previous.duration) {
      const left = previous.duration - elapsed;
      text += left > 0
        ? ` · about ${seconds(left)} left (export #${previous.id} took ${seconds(previous.duration)})`
        : ` · longer than export #${previous.id} (${seconds(previous.duration)})`;
    }
    return `${text}.`;
  }

  function render(run, config) {
    const percent = percentOf(run, config);
    const bar = document.getElementById("progress-bar");
    bar.value = percent;
    bar.textContent = `${percent} %`;
    document.getElementById("progress-percent").textContent = `${percent} %`;
    const stepEl = document.getElementById("progress-step");
    stepEl.textContent = run.status === "queued"
      ? `Export #${run.id} is queued`
      : run.status === "running"
        ? `Export #${run.id}: ${config.steps[run.step] || "starting"}`
        : `Export #${run.id} ${run.status}`;
    document.getElementById("progress-detail").textContent = detailOf(run, config);
    document.getElementById("progress-time").textContent = timeOf(run, config);
    const box = document.getElementById("run-progress");
    box.dataset.status = run.status;
    box.classList.toggle("failed", run.status === "failed");
    const button = document.getElementById("run-now");
    if (button && (run.status === "queued" || run.status === "running")) {
      button.textContent = `#${run.id} ${run.status}`;
    } else if (button && button.dataset.active === String(run.id)) {
      // Finished: the button says so at once, not "running" until the page reloads.
      button.textContent = `#${run.id} ${run.status}`;
    }
    const status = document.getElementById("run-status");
    if (status) {
      status.textContent = run.status;
      status.className = `badge ${run.status}`;
    }
  }

  function follow() {
    const box = document.getElementById("run-progress");
    const configEl = document.getElementById("progress-config");
    if (!box || !configEl) return;
    const config = JSON.parse(configEl.textContent);
    const poll = async () => {
      let run;
      try {
        const response = await fetch(box.dataset.api, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        run = await response.json();
      } catch (error) {
        document.getElementById("progress-detail").textContent = `Progress unavailable (${error.message}); retrying…`;
        setTimeout(poll, 3000);
        return;
      }
      render(run, config);
      if (run.status === "succeeded" || run.status === "failed") {
        // Leave the final state on screen a moment, then show the new files and history.
        setTimeout(() => window.location.reload(), 2500);
        return;
      }
      setTimeout(poll, 1000);
    };
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    netboxStatus();
    follow();
  });
})();
