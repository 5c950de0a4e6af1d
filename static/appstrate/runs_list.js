// The runs list: status pills follow run events from /ws/runs/ without reloading; runs that
// appear after the page loaded are announced with a link to reload.
"use strict";

(function () {
  const LABELS = {
    queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed",
    cancelled: "Cancelled", timed_out: "Timed out",
  };
  let retryDelay = 500;
  let newRuns = 0;

  function statusOf(type) {
    if (type === "run.queued") return "queued";
    if (type === "run.started") return "running";
    return type.slice(4);
  }

  function apply(frame) {
    const status = statusOf(frame.type || "");
    if (!LABELS[status]) return;
    const pill = document.querySelector('[data-run-status="' + frame.run_id + '"]');
    if (pill) {
      pill.className = "status status-" + status;
      pill.textContent = LABELS[status];
    } else if (status === "queued") {
      newRuns += 1;
      const banner = document.getElementById("runs-new");
      if (banner) {
        banner.hidden = false;
        banner.querySelector("span").textContent = newRuns + (newRuns === 1 ? " new run" : " new runs");
      }
    }
  }

  function setLive(state, text) {
    const el = document.getElementById("live-indicator");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/runs/");
    socket.onopen = () => { retryDelay = 500; setLive("open", "live"); };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.kind === "event") apply(frame);
    };
    socket.onclose = (event) => {
      if (event.code >= 4400 && event.code < 4500) { setLive("closed", "live updates unavailable"); return; }
      setLive("connecting", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.getElementById("live-indicator")) connect();
  });
})();
