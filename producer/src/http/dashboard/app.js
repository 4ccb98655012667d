// taskfleet dashboard. Served with a strict Content-Security-Policy (no inline
// script or style); every value from the API is rendered with textContent, never
// as markup. The bearer token lives in sessionStorage and travels only in the
// Authorization header; live updates read GET /v1/events with fetch (EventSource
// cannot send that header, and a token in the URL would reach logs and history).
"use strict";

const TOKEN_KEY = "taskfleet.token";
const COUNTERS = ["scheduled", "waiting", "pending", "running", "retrying", "cancelling",
  "enqueued", "completed", "failed", "cancelled", "retried"];
const MAX_EVENTS = 50;
let currentTask = null;
let statsTimer = null;
let streamAbort = null;

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function show(text) { $("message").textContent = text || ""; }

function asText(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers = Object.assign({ "Authorization": "Bearer " + token() }, opts.headers);
  if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (res.status === 401) { signOut("Token refused (401): sign in again."); throw new Error("401"); }
  if (!res.ok) {
    const msg = body && body.error ? body.error.message : res.statusText;
    throw new Error(res.status + " " + msg);
  }
  return body;
}

// --- pages ---

function showPage(name) {
  for (const s of document.querySelectorAll("section.page")) s.hidden = s.id !== name;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.page === name);
  if (name === "overview") refreshOverview();
  if (name === "dead") refreshDead();
  if (name === "schedules") refreshSchedules();
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function keyValueRows(obj) {
  return Object.entries(obj || {}).map(([k, v]) => {
    const tr = el("tr", null, { "data-key": k });
    tr.append(el("th", k));
    const td = el("td");
    td.append(el("pre", asText(v)));
    tr.append(td);
    return tr;
  });
}

async function refreshStats() {
  const stats = await api("/v1/stats");
  const head = $("stats").tHead.rows[0];
  head.replaceChildren(el("th", "type"), ...COUNTERS.map((c) => el("th", c)));
  const rows = Object.entries(stats.types || {}).map(([type, counters]) => {
    const tr = el("tr", null, { "data-type": type });
    tr.append(el("th", type));
    for (const c of COUNTERS) tr.append(el("td", counters[c] ?? 0, { "data-counter": c, "class": "num" }));
    return tr;
  });
  fillRows($("stats").tBodies[0], rows);
}

async function refreshOverview() {
  try {
    await refreshStats();
    const workers = await api("/v1/workers");
    const list = Array.isArray(workers) ? workers : (workers.workers || []);
    fillRows($("workers").tBodies[0], list.map((w) => {
      const tr = el("tr");
      for (const k of ["id", "host", "status", "inflight", "concurrency", "heartbeat_at"]) tr.append(el("td", asText(w[k])));
      return tr;
    }));
    const types = await api("/v1/types");
    fillRows($("types").tBodies[0], keyValueRows(types.types || types));
  } catch (e) { show("Overview: " + e.message); }
}

function scheduleStats() {
  if (statsTimer) return;
  statsTimer = setTimeout(() => {
    statsTimer = null;
    refreshStats().catch((e) => show("Counters: " + e.message));
  }, 300);
}

async function loadTask(id) {
  currentTask = id;
  try {
    const record = await api("/v1/tasks/" + encodeURIComponent(id));
    $("task").hidden = false;
    fillRows($("record").tBodies[0], keyValueRows(record));
    $("progress").value = Number(record.progress || 0);
    const logs = await api("/v1/tasks/" + encodeURIComponent(id) + "/logs").catch(() => ({ lines: [] }));
    $("logs").textContent = (logs.lines || []).join("\n");
  } catch (e) {
    $("task").hidden = true;
    show("Task " + id + ": " + e.message);
  }
}

async function act(what, path, body) {
  if (!window.confirm(what + "?")) return null;
  try {
    const r = await api(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
    show(what + ": done");
    return r;
  } catch (e) {
    show(what + " refused: " + e.message);
    return null;
  }
}

async function refreshDead() {
  try {
    const dead = await api("/v1/dead");
    fillRows($("dead-list").tBodies[0], (dead.messages || []).map((m) => {
      const tr = el("tr");
      const id = m.id || m.message_id || "";
      for (const v of [id, m.type || m.task_type, m.reason, m.attempts, m.error]) tr.append(el("td", asText(v)));
      const td = el("td");
      const b = el("button", "Replay…", { "type": "button" });
      b.addEventListener("click", () => act("Replay " + id, "/v1/dead/replay", { id }).then(refreshDead));
      td.append(b);
      tr.append(td);
      return tr;
    }));
  } catch (e) { show("Dead letters: " + e.message); }
}

async function refreshSchedules() {
  try {
    const s = await api("/v1/schedules");
    fillRows($("schedules-list").tBodies[0], keyValueRows(s.schedules || s));
  } catch (e) { show("Schedules: " + e.message); }
}

// --- live updates: GET /v1/events read with fetch, so the token stays in a header ---

function onEvent(ev) {
  const li = el("li", [ev.to || (ev.progress !== undefined ? "progress " + ev.progress : "report"), ev.type, ev.id].map(asText).join(" "), { "data-id": asText(ev.id) });
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  scheduleStats();
  if (currentTask && ev.id === currentTask) loadTask(currentTask);
}

async function stream() {
  let pause = 500;
  while (token()) {
    streamAbort = new AbortController();
    try {
      const res = await fetch("/v1/events", { headers: { "Authorization": "Bearer " + token() }, signal: streamAbort.signal });
      if (!res.ok) throw new Error("events: " + res.status);
      $("live").textContent = "live";
      $("live").classList.add("on");
      pause = 500;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          try { onEvent(JSON.parse(data)); } catch (_) { /* not JSON: ignore */ }
        }
      }
    } catch (e) {
      if (!token()) return;
    }
    $("live").textContent = "reconnecting";
    $("live").classList.remove("on");
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

// --- sign in / out ---

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (streamAbort) streamAbort.abort();
  for (const s of document.querySelectorAll("section.page")) s.hidden = true;
  $("login").hidden = false;
  $("live").textContent = "offline";
  $("live").classList.remove("on");
  show(why || "");
}

function start() {
  $("login").hidden = true;
  show("");
  showPage("overview");
  stream();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => signOut("Signed out."));
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showPage(b.dataset.page));
  $("lookup").addEventListener("submit", (e) => {
    e.preventDefault();
    showPage("tasks");
    loadTask($("task-id").value.trim());
  });
  $("cancel").addEventListener("click", async () => {
    if (!currentTask) return;
    await act("Cancel task " + currentTask, "/v1/tasks/" + encodeURIComponent(currentTask) + "/cancel");
    loadTask(currentTask);
  });
  $("replay").addEventListener("click", async () => {
    if (!currentTask) return;
    await act("Replay task " + currentTask, "/v1/dead/replay", { id: currentTask });
    loadTask(currentTask);
  });
  $("dead-refresh").addEventListener("click", refreshDead);
  $("replay-all").addEventListener("click", () => act("Replay every dead task", "/v1/dead/replay", { all: true }).then(refreshDead));
  if (token()) start(); else signOut();
});
