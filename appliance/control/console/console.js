// The appliance console: plain JS, no library, no build step. Viewer text only ever goes
// through textContent (never innerHTML). Every POST carries the session's CSRF token.
"use strict";
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const MAX_LINES = 200;

function toast(text, error) {
  const t = $("toast");
  t.textContent = text; t.className = "show" + (error ? " error" : "");
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.className = ""; }, 3000);
}

async function post(path, body) {
  const r = await fetch(path, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body || {})});
  let data = {};
  try { data = await r.json(); } catch (e) { /* no body */ }
  if (!r.ok) { toast(data.error || r.statusText, true); throw new Error(data.error || r.statusText); }
  return data;
}

function addLine(list, cls, parts, id) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  if (id) li.dataset.id = id;
  for (const [c, text] of parts) {
    const span = document.createElement("span");
    if (c) span.className = c;
    span.textContent = text;
    li.appendChild(span);
  }
  list.appendChild(li);
  while (list.children.length > MAX_LINES) list.removeChild(list.firstChild);
  list.scrollTop = list.scrollHeight;
  return li;
}

function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }

// --- when the appliance does not answer (503: at its limits, held, restarting): say so, retry ---
const trouble = {};  // what is failing now ("state", "events") -> the reason
function showTrouble() {
  const box = $("offline"), parts = Object.values(trouble);
  box.hidden = parts.length === 0;
  box.textContent = parts.join(" · ");
}
function failing(what, reason, retryS) {
  trouble[what] = `${what}: ${reason} (retrying in ${Math.round(retryS)} s)`;
  showTrouble();
}
function working(what) { delete trouble[what]; showTrouble(); }
function backoff(previous) { return Math.min(30, Math.max(2, previous * 2)); }

// --- the event feed (SSE) ------------------------------------------------------------------
function chatLine(ev) {
  const d = ev.data, user = d.user || {};
  const amount = d.amount ? ` (${d.amount})` : "";
  addLine($("chat"), ev.kind, [["name", (user.name || "viewer") + amount], ["", " " + (d.text || ev.kind)]], d.id);
}
function mark(ids, cls, remove) {
  for (const id of ids || []) {
    const li = document.querySelector(`#chat li[data-id="${CSS.escape(String(id))}"]`);
    if (li) { if (remove) li.classList.remove(remove); li.classList.add(cls); }
  }
}
const handlers = {
  chat: chatLine, tip: chatLine, trade: chatLine, follow: chatLine,
  answering: (ev) => mark(ev.data.ids, "answering"),
  reply: (ev) => {
    mark(ev.data.to, "answered", "answering");
    if ((ev.data.routes || ["chat"]).includes("chat")) addLine($("chat"), "agent", [["name", $("agent").textContent], ["", " " + ev.data.text]]);
  },
  viewers: (ev) => { $("viewers").textContent = ev.data.count; },
  state: (ev) => setState(ev.data.state),
};
function onEvent(ev) {
  if (ev.kind.startsWith("utterance_") || ev.kind === "state" || ev.kind === "gap") {
    addLine($("events"), ev.kind, [["", `${clock(ev.time)} ${ev.kind}`], ["", ev.data.text ? ": " + ev.data.text : (ev.data.state ? ": " + ev.data.state : "")]]);
  }
  if (ev.kind === "utterance_started") $("speaking").textContent = ev.data.text || "…";
  if (ev.kind === "utterance_finished") $("speaking").textContent = "–";
  (handlers[ev.kind] || (() => {}))(ev);
}
// An EventSource that got a 503 (or any non-200) closes for good: open a new one after a pause
// (it resumes from the last event id it saw, so nothing is missed within the buffer).
let lastEventId = null, eventsRetry = 1;
function listen() {
  const es = new EventSource("/events" + (lastEventId ? "?last_event_id=" + encodeURIComponent(lastEventId) : ""));
  for (const kind of ["chat", "tip", "trade", "follow", "viewers", "state", "utterance_started",
                      "utterance_finished", "answering", "reply", "gap", "direction"]) {
    es.addEventListener(kind, (m) => {
      lastEventId = m.lastEventId || lastEventId;
      try { onEvent(JSON.parse(m.data)); } catch (e) { console.error(e); }
    });
  }
  es.onopen = () => { eventsRetry = 1; working("event feed"); };
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) { failing("event feed", "reconnecting", 2); return; }
    eventsRetry = backoff(eventsRetry);
    failing("event feed", "refused or unreachable", eventsRetry);
    setTimeout(listen, eventsRetry * 1000);
  };
}

// --- the preview: one frame at a time, the next one asked once this one is shown -------------
let previewEvery = 1000;
function nextFrame() {
  const img = $("preview"), started = Date.now();
  const next = () => setTimeout(nextFrame, Math.max(100, previewEvery - (Date.now() - started)));
  img.onload = () => { $("preview-age").textContent = new Date().toLocaleTimeString(); next(); };
  img.onerror = () => setTimeout(nextFrame, 3000);
  img.src = "/screenshot?t=" + started;
}

// --- state, figures and sparklines ----------------------------------------------------------
function setState(state) {
  const b = $("state");
  b.textContent = state; b.className = "badge " + state;
  $("go-live").disabled = !["waiting", "init", "credentials", "verification", "skill_check"].includes(state);
  $("stop").disabled = ["stopping", "stopped", "failed"].includes(state);
}
function spark(values) {
  const nums = values.map((v) => (typeof v === "number" ? v : null));
  const real = nums.filter((v) => v !== null);
  if (real.length < 2) return "";
  const lo = Math.min(...real), hi = Math.max(...real), span = hi - lo || 1;
  const pts = nums.map((v, i) => v === null ? null : `${(i / (nums.length - 1) * 100).toFixed(1)},${(20 - (v - lo) / span * 18).toFixed(1)}`).filter(Boolean);
  return `<svg class="spark" viewBox="0 0 100 22" preserveAspectRatio="none"><polyline points="${pts.join(" ")}"/></svg>`;
}
function figure(dl, label, value, series) {
  const dt = document.createElement("dt"), dd = document.createElement("dd"), sp = document.createElement("span");
  dt.textContent = label; dd.textContent = value === null || value === undefined ? "–" : value;
  sp.innerHTML = series ? spark(series) : "";  // numbers only: built from the appliance's own figures
  dl.append(dt, dd, sp);
}
function duration(s) {
  s = Math.round(s || 0);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
}
function fill(list, items, text) {
  list.replaceChildren();
  for (const item of items) addLine(list, "", [["", text(item)]]);
}
let stateRetry = 1;
async function refresh() {
  let next = 5;
  try {
    const r = await fetch("/console/state", {credentials: "same-origin"});
    if (r.status === 401) { failing("console", "logged out: run `appliance console` for a new login URL", 30); return; }
    if (!r.ok) {
      let why = r.statusText;
      try { why = (await r.json()).error || why; } catch (e) { /* no JSON body */ }
      stateRetry = backoff(stateRetry);
      failing("appliance", `${r.status} ${why}`, stateRetry);
      next = stateRetry;
      return;
    }
    stateRetry = 1;
    working("appliance");
    const s = await r.json(), st = s.status, hist = s.history.samples;
    $("agent").textContent = st.agent || "appliance";
    setState(st.state);
    $("uptime").textContent = duration(st.uptime_s);
    $("viewers").textContent = st.viewers;
    previewEvery = 1000 / (s.preview_fps || 1);
    const col = (k) => hist.map((p) => p[k]);
    const dl = $("figures"); dl.replaceChildren();
    figure(dl, "viewers", st.viewers, col("viewers"));
    figure(dl, "encoder fps", st.fps, col("fps"));
    figure(dl, "speed", st.speed, col("speed"));
    figure(dl, "bitrate kbps", st.bitrate_kbps, col("bitrate_kbps"));
    figure(dl, "dropped frames", st.dropped_frames, col("dropped_frames"));
    figure(dl, "encoder", st.encoder);
    figure(dl, "restarts", st.restarts);
    figure(dl, "stream starts / hour", `${st.stream_starts_last_hour} of ${st.stream_start_budget}`);
    if (st.waiting) figure(dl, "waiting", `${st.waiting.reason}: ${st.waiting.detail || ""}`);
    fill($("errors"), s.history.errors.slice().reverse(), (e) => `${clock(e.t)} ${e.error}`);
    fill($("notifications"), s.notifications.slice().reverse(), (n) => `${n.time || ""} ${n.kind || n.event || ""}: ${n.message || n.text || ""}`);
    $("pending").textContent = s.speech.pending;
    if (s.speech.speaking) $("speaking").textContent = s.speech.speaking;
    const scenes = $("scenes");
    if (scenes.children.length !== s.scenes.length) {
      scenes.replaceChildren();
      for (const name of s.scenes) {
        const b = document.createElement("button");
        b.type = "button"; b.dataset.scene = name; b.textContent = name;
        b.onclick = () => post("/scene", {name}).then(() => { toast("scene " + name); refresh(); });
        scenes.appendChild(b);
      }
    }
    for (const b of scenes.children) b.classList.toggle("current", b.dataset.scene === s.scene);
  } catch (e) {
    stateRetry = backoff(stateRetry);
    failing("appliance", "does not answer", stateRetry);
    next = stateRetry;
  } finally {
    clearTimeout(refresh.timer);
    refresh.timer = setTimeout(refresh, next * 1000);
  }
}
async function readTerminal() {
  try { $("terminal").textContent = (await post("/terminal", {lines: 60})).screen || ""; } catch (e) { /* shown by toast */ }
  const pre = $("terminal"); pre.scrollTop = pre.scrollHeight;
}

// --- forms -------------------------------------------------------------------------------
function form(id, input, send) {
  $(id).addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $(input).value.trim();
    if (!text) return;
    try { await send(text); $(input).value = ""; } catch (err) { /* toast shown */ }
  });
}
form("say-form", "say-text", (text) => post("/say", {text}).then((d) => { toast(`queued (${d.position} ahead)`); $("pending").textContent = d.position + 1; }));
form("show-form", "show-text", (text) => post("/show", {text}).then(() => toast("shown")));
form("chat-form", "chat-text", (text) => post("/chat", {message: text}).then(() => toast("posted")));
form("term-form", "term-text", (text) => post("/terminal", {text, lines: 60}).then((d) => { $("terminal").textContent = d.screen; setTimeout(readTerminal, 700); }));
document.querySelector('#term-form [data-key]').onclick = () => post("/terminal", {keys: ["C-c"], lines: 60}).then((d) => { $("terminal").textContent = d.screen; });
$("flush").onclick = () => post("/voice", {flush: true}).then((d) => toast(`flushed ${d.flushed}`));
$("go-live").onclick = () => post("/go_live", {wait_s: 0}).then((d) => toast("go live: " + d.state));
$("stop").onclick = () => { if (confirm("End the stream? The appliance stops and stays stopped.")) post("/stop").then(() => toast("stopping")); };
$("logout").onclick = () => post("/console/logout").then(() => failing("console", "logged out: run `appliance console` for a new login URL", 30));

listen();
nextFrame();
refresh();  // then every 5 s, or sooner after a refusal
readTerminal();
setInterval(() => { if (!document.hidden) readTerminal(); }, 3000);
