// The live run page: applies run events from /ws/runs/<id>/ as they arrive, and refreshes the
// structured parts (outputs, durations, progress) from the state endpoint shortly after.
// Reconnects resume from the last sequence number seen, so nothing is missed or repeated.
"use strict";

(function () {
  const FINAL = ["succeeded", "failed", "cancelled", "timed_out"];
  const STEP_DONE = ["succeeded", "failed", "skipped", "cancelled"];
  const STATUS_LABELS = {
    queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed",
    cancelled: "Cancelled", timed_out: "Timed out",
  };
  const NO_RETRY_CODES = [4400, 4401, 4403, 4404];

  let config;
  let lastSeq = 0;
  let socket = null;
  let retryDelay = 500;
  let refreshTimer = null;
  let runStatus = null;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

  function stepElement(stepId) {
    return $all("#timeline li.step").find((li) => li.dataset.step === stepId) || null;
  }

  function setStatusPill(el, status, label) {
    el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
    el.textContent = label || status;
  }

  function setStepStatus(stepId, status) {
    const li = stepElement(stepId);
    if (li) {
      li.dataset.status = status;
      setStatusPill($("[data-field=status]", li), status);
      // Open what needs attention; close again what we opened once it is done.
      const details = $("details", li);
      if (status === "running" || status === "failed" || status === "retrying") {
        if (!details.open) { details.open = true; li.dataset.autoOpened = "1"; }
      } else if (li.dataset.autoOpened && status !== "failed") {
        details.open = false;
        delete li.dataset.autoOpened;
      }
    }
    $all("#run-diagram g.node").forEach((node) => {
      if (node.getAttribute("data-step") === stepId) node.setAttribute("data-status", status);
    });
    updateProgressFromPage();
  }

  function updateProgressFromPage() {
    const steps = $all("#timeline li.step");
    const done = steps.filter((li) => STEP_DONE.includes(li.dataset.status)).length;
    setProgress(done, steps.length);
  }

  function setProgress(done, total) {
    const bar = $("#run-progress");
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuemax", String(total));
    $(".progress-bar", bar).style.width = (total ? Math.round((100 * done) / total) : 0) + "%";
    $("#progress-text").innerHTML = "<b>" + done + "</b> of <b>" + total + "</b> steps done";
  }

  function setRunStatus(status) {
    runStatus = status;
    setStatusPill($("#run-status"), status, STATUS_LABELS[status]);
    const bar = $("#run-progress .progress-bar");
    bar.className = "progress-bar status-" + status;
    const final = FINAL.includes(status);
    $all("[data-show-when]").forEach((form) => {
      const when = form.dataset.showWhen;
      const show = (when === "active" && !final) || (when === "final" && final) ||
        (when === "unsuccessful" && final && status !== "succeeded");
      form.hidden = !show;
    });
    $("#run-pending").hidden = final;
  }

  function pretty(value) {
    return value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  }

  function stepIdOf(payload) {
    return payload.step || payload.step_id || null;
  }

  function appendLog(stepId, payload) {
    const li = stepElement(stepId);
    if (!li) return;
    let text = payload.line ?? payload.text ?? payload.message ?? payload.log ?? "";
    if (Array.isArray(payload.lines)) text = payload.lines.join("\n");
    const pre = $("[data-field=logs]", li);
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent += (pre.textContent && !pre.textContent.endsWith("\n") ? "\n" : "") + text;
    if (stick) pre.scrollTop = pre.scrollHeight;
  }

  function applyEvent(frame) {
    const payload = frame.payload || {};
    const type = frame.type || "";
    const stepId = stepIdOf(payload);
    if (type.startsWith("run.")) {
      const status = type === "run.queued" ? "queued" : type === "run.started" ? "running" : type.slice(4);
      if (STATUS_LABELS[status]) setRunStatus(status);
    } else if (stepId) {
      if (type === "step.log") {
        appendLog(stepId, payload);
        return;
      }
      const stepStatus = {
        "step.started": "running", "step.retrying": "retrying", "step.succeeded": "succeeded",
        "step.failed": "failed", "step.skipped": "skipped", "step.cancelled": "cancelled",
      }[type];
      if (stepStatus) setStepStatus(stepId, stepStatus);
      if (type === "step.started" && payload.attempt) {
        const li = stepElement(stepId);
        if (li) $("[data-field=attempt]", li).textContent = payload.attempt;
      }
    }
    scheduleRefresh();
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 250);
  }

  async function refresh() {
    let state;
    try {
      const response = await fetch(config.stateUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      state = await response.json();
    } catch (err) {
      return;
    }
    // Only move forward: an event newer than this state will trigger another refresh.
    if (state.last_event_seq < lastSeq && !FINAL.includes(state.status)) scheduleRefresh();
    setRunStatus(state.status);
    state.steps.forEach((step) => {
      const li = stepElement(step.id);
      if (!li) return;
      // A live event may be newer than this state: keep the status it set.
      if (!(STEP_DONE.includes(li.dataset.status) && !STEP_DONE.includes(step.status))) {
        setStepStatus(step.id, step.status);
      }
      $("[data-field=attempt]", li).textContent = step.attempt;
      $("[data-field=duration]", li).textContent = formatDuration(step.duration_ms);
      $("[data-field=input]", li).textContent = pretty(step.input);
      $("[data-field=output]", li).textContent = pretty(step.output);
      $("[data-field=error]", li).textContent = step.error || "";
      $("[data-field=error-box]", li).hidden = !step.error;
      // Finished steps' logs are complete in the database; running ones keep streaming.
      if (STEP_DONE.includes(step.status)) $("[data-field=logs]", li).textContent = step.logs || "";
    });
    setProgress(state.progress.done, state.progress.total);
    $("#run-error").hidden = !state.error;
    $("#run-error pre").textContent = state.error || "";
    $("#run-output").hidden = state.output === null;
    $("#run-output pre").textContent = pretty(state.output);
    $("#run-duration").textContent = state.duration_ms === null ? "" : "took " + formatDuration(state.duration_ms);
  }

  function setLive(state, text) {
    const el = $("#live-indicator");
    el.dataset.state = state;
    el.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + config.socketPath + "?after=" + lastSeq);
    socket.onopen = () => { retryDelay = 500; setLive("open", "live"); };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.kind === "event") {
        if (frame.seq <= lastSeq) return;
        lastSeq = frame.seq;
        applyEvent(frame);
      } else if (frame.kind === "error") {
        setLive("error", frame.message);
      }
    };
    socket.onclose = (event) => {
      if (NO_RETRY_CODES.includes(event.code)) {
        setLive("closed", event.code === 4403 ? "no permission for live updates" : "live updates unavailable");
        return;
      }
      setLive("connecting", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const node = document.getElementById("run-page-config");
    if (!node) return;
    config = JSON.parse(node.textContent);
    lastSeq = config.after;
    runStatus = $("#run-page") && $("#run-status").className.match(/status-(\S+)/)[1];
    connect();
  });
})();
