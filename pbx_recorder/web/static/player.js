/* The player page (templates/player.html): audio with Range, waveform from the server's peaks,
   PCI pauses, A-B loop, skip-silence, skip to the customer, marks, keyboard shortcuts.
   Text from the server (marks) is only ever set with textContent. */
"use strict";
(function () {
  const root = document.getElementById("player");
  if (!root) return;
  const rid = root.dataset.recording, callId = root.dataset.call;
  const audio = document.getElementById("audio");
  const canvas = document.getElementById("waveform");
  const status = document.getElementById("status");
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
  const SILENT = 3, MIN_SILENCE_S = 1.0;
  let peaks = null, marks = [], loopA = null, loopB = null, silences = [];

  const $ = (id) => document.getElementById(id);
  const fmt = (s) => { s = Math.max(0, Math.floor(s || 0)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
  const say = (text) => { status.textContent = text || ""; };
  const api = (path, opts) => fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}))
    .then((r) => r.ok ? r.json() : r.json().catch(() => ({})).then((b) => Promise.reject(new Error(b.error || r.status))));
  const duration = () => (audio && isFinite(audio.duration) && audio.duration) || (peaks && peaks.duration) || Number(root.dataset.duration) || 0;
  const seek = (t) => { if (audio) audio.currentTime = Math.min(Math.max(0, t), duration() || t); draw(); };

  /* ---- waveform ---- */
  function draw() {
    if (!canvas) return;
    const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, d = duration();
    g.clearRect(0, 0, w, h);
    if (!peaks || !d) return;
    const x = (t) => (t / d) * w;
    if (loopA !== null) { g.fillStyle = "rgba(255,200,0,0.3)"; g.fillRect(x(loopA), 0, x(loopB === null ? d : loopB) - x(loopA), h); }
    const list = peaks.peaks, n = list.length;
    g.fillStyle = "#3a6ea5";
    for (let px = 0; px < w; px++) {
      const lo = Math.floor((px / w) * n), hi = Math.max(lo + 1, Math.floor(((px + 1) / w) * n));
      let p = 0;
      for (let i = lo; i < hi && i < n; i++) p = Math.max(p, list[i]);
      const bar = (p / 100) * (h - 4);
      g.fillRect(px, (h - bar) / 2, 1, Math.max(1, bar));
    }
    g.fillStyle = "rgba(120,120,120,0.55)";  // PCI pauses over the bars: the recording was muted
    (peaks.pauses || []).forEach(([a, b]) => g.fillRect(x(a), 0, Math.max(2, x(b) - x(a)), h));
    g.fillStyle = "#d0453a";
    marks.forEach((m) => g.fillRect(x(m.position_s) - 1, 0, 2, h));
    if (audio) {
      g.fillStyle = "#000"; g.fillRect(x(audio.currentTime), 0, 2, h);
      $("clock").textContent = fmt(audio.currentTime) + " / " + fmt(d);
    }
  }
  function silentRuns() {
    const out = [], list = peaks.peaks, step = 1 / peaks.rate;
    let start = null;
    list.forEach((p, i) => {
      if (p <= SILENT && start === null) start = i;
      if ((p > SILENT || i === list.length - 1) && start !== null) {
        const end = p > SILENT ? i : i + 1;
        if ((end - start) * step >= MIN_SILENCE_S) out.push([start * step, end * step]);
        start = null;
      }
    });
    return out;
  }
  function toCustomer() {
    const ch = peaks && peaks.customer_channel, cp = peaks && peaks.channel_peaks;
    if (ch === null || ch === undefined || !cp || cp.length !== 2) return;
    const mine = cp[ch], other = cp[1 - ch], step = 1 / peaks.rate;
    let i = Math.floor((audio.currentTime + 0.5) / step) + 1;
    for (; i < mine.length; i++) if (mine[i] > SILENT * 2 && mine[i] > (other[i] || 0)) { seek(i * step); return; }
  }

  /* ---- marks ---- */
  function renderMarks() {
    const ol = $("marks");
    ol.replaceChildren();
    if (!marks.length) { const li = document.createElement("li"); li.textContent = root.dataset.msgNone; ol.appendChild(li); }
    marks.forEach((m) => {
      const li = document.createElement("li");
      li.className = "mark";
      const go = document.createElement("button");
      go.type = "button"; go.className = "seek"; go.textContent = fmt(m.position_s);
      go.addEventListener("click", () => seek(m.position_s));
      const label = document.createElement("span"); label.className = "label"; label.textContent = m.label;
      const by = document.createElement("span"); by.className = "by"; by.textContent = m.author;
      li.append(go, label, by);
      if (m.author === root.dataset.user || root.dataset.admin) {
        const del = document.createElement("button");
        del.type = "button"; del.className = "delete"; del.textContent = root.dataset.msgDelete;
        del.addEventListener("click", () => api("/api/marks/" + m.id, { method: "DELETE", headers: { "X-CSRF-Token": csrf() } })
          .then(loadMarks, (e) => say(root.dataset.msgError + ": " + e.message)));
        li.appendChild(del);
      }
      if (m.note) { const note = document.createElement("span"); note.className = "note"; note.textContent = m.note; li.appendChild(note); }
      ol.appendChild(li);
    });
    draw();
  }
  function loadMarks() {
    return api("/api/calls/" + encodeURIComponent(callId) + "/marks")
      .then((b) => { marks = b.marks; renderMarks(); }, (e) => say(root.dataset.msgError + ": " + e.message));
  }
  const form = $("mark-form");
  if (form) form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { recording_id: rid, position_s: audio ? audio.currentTime : 0, label: $("mark-label").value, note: $("mark-note").value };
    api("/api/calls/" + encodeURIComponent(callId) + "/marks", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() } })
      .then(() => { $("mark-label").value = ""; $("mark-note").value = ""; say(""); return loadMarks(); },
        (e) => say(root.dataset.msgError + ": " + e.message));
  });
  const restore = $("restore");
  if (restore) restore.addEventListener("click", () => api("/api/recordings/" + rid + "/restore", { method: "POST", headers: { "X-CSRF-Token": csrf() } })
    .then((b) => { $("restore-state").textContent = b.restore_state; if (b.restore_state === "done" || b.restore_state === "not_needed") location.reload(); },
      (e) => say(root.dataset.msgError + ": " + e.message)));

  /* ---- transport ---- */
  function setSpeed(v) { audio.playbackRate = v; $("speed").value = String(v); }
  function nudgeSpeed(dir) {
    const i = SPEEDS.indexOf(audio.playbackRate);
    setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, (i < 0 ? 2 : i) + dir))]);
  }
  const toggle = () => (audio.paused ? audio.play().catch((e) => say(e.message)) : audio.pause());
  if (audio) {
    $("play").addEventListener("click", toggle);
    $("back10").addEventListener("click", () => seek(audio.currentTime - 10));
    $("fwd10").addEventListener("click", () => seek(audio.currentTime + 10));
    $("speed").addEventListener("change", (e) => setSpeed(Number(e.target.value)));
    $("volume").addEventListener("input", (e) => { audio.volume = Number(e.target.value); });
    $("loop-a").addEventListener("click", () => { loopA = audio.currentTime; loopB = null; showLoop(); });
    $("loop-b").addEventListener("click", () => { if (loopA !== null && audio.currentTime > loopA) { loopB = audio.currentTime; showLoop(); } });
    $("loop-clear").addEventListener("click", () => { loopA = loopB = null; showLoop(); });
    $("customer").addEventListener("click", toCustomer);
    canvas.addEventListener("click", (e) => { const r = canvas.getBoundingClientRect(); seek(((e.clientX - r.left) / r.width) * duration()); });
    audio.addEventListener("timeupdate", () => {
      const t = audio.currentTime;
      if (loopA !== null && loopB !== null && t >= loopB) audio.currentTime = loopA;
      if ($("skip-silence").checked) {
        const run = silences.find(([a, b]) => t >= a && t < b - 0.25);
        if (run) audio.currentTime = run[1];
      }
      draw();
    });
    audio.addEventListener("loadedmetadata", draw);
    audio.addEventListener("seeked", draw);
    audio.addEventListener("error", () => say(root.dataset.msgError));
    document.addEventListener("keydown", (e) => {
      if (e.target.closest && e.target.closest("input, textarea, select")) return;
      if (e.key === " ") { e.preventDefault(); toggle(); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); seek(audio.currentTime - 10); }
      else if (e.key === "ArrowRight") { e.preventDefault(); seek(audio.currentTime + 10); }
      else if (e.key === "+" || e.key === "=") nudgeSpeed(1);
      else if (e.key === "-" || e.key === "_") nudgeSpeed(-1);
    });
    document.addEventListener("keyup", (e) => { if (e.key === " ") e.preventDefault(); }); // no button click
    api("/api/recordings/" + rid + "/peaks").then((p) => {
      peaks = p; silences = silentRuns(); canvas.dataset.ready = "1";
      if (p.customer_channel !== null && p.customer_channel !== undefined && (p.channel_peaks || []).length === 2) $("customer").hidden = false;
      draw();
    }, (e) => say(root.dataset.msgError + ": " + e.message));
  }
  function showLoop() { $("loop").textContent = loopA === null ? "" : "A " + fmt(loopA) + (loopB === null ? "" : " – B " + fmt(loopB)); draw(); }
  loadMarks();
})();
