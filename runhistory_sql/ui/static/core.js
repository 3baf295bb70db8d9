// runhistory-sql dashboard: the pieces every page shares.
// All data goes through api(path). In a report file (ui/report.py) the answers are embedded in
// the page and api() looks them up instead of fetching. Every string from the database is put in
// the page with textContent (el() below), never as HTML.
"use strict";

window.runhistory = window.runhistory || {};
window.runhistoryCharts = window.runhistoryCharts || {};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function embedded() {
  if (window.RUNHISTORY_EMBED === undefined) {
    const node = document.getElementById("runhistory-embed");
    window.RUNHISTORY_EMBED = node ? JSON.parse(node.textContent) : null;
  }
  return window.RUNHISTORY_EMBED;
}

/** The one door to the data: GET `path` (e.g. "/api/runs?limit=50") as JSON. */
async function api(path) {
  const embed = embedded();
  if (embed) {
    if (!(path in embed.responses)) throw new ApiError(404, "this report does not hold " + path);
    return JSON.parse(JSON.stringify(embed.responses[path]));
  }
  const response = await fetch(path, {headers: {Accept: "application/json"}, credentials: "same-origin"});
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? body.error : (typeof body === "string" ? body : response.statusText);
    throw new ApiError(response.status, message);
  }
  return body;
}

/** Build a query string from an object; arrays repeat their key; empty values are left out. */
function qs(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === undefined || v === null || v === "") continue;
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(v)));
    }
  }
  return parts.length ? "?" + parts.join("&") : "";
}

/** A DOM element: el("td", {class: "num"}, "text", otherNode). Strings become text nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

function fmtNumber(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return typeof v === "object" ? JSON.stringify(v) : String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : String(+v.toPrecision(6));
}

function fmtValue(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "number" ? fmtNumber(v) : (typeof v === "string" ? v : JSON.stringify(v));
}

function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : (m ? `${m}m ${r}s` : `${r}s`);
}

function badge(status) {
  return el("span", {class: "badge badge-" + String(status).replace(/[^a-z]/g, ""), dataset: {status}}, status);
}

function showError(target, error) {
  clear(target).appendChild(el("div", {class: "error", role: "alert"}, String(error && error.message || error)));
}

function isLive() { return !embedded(); }

/** Call `fn` every `ms` while the tab is visible; returns a stop function. */
function every(ms, fn) {
  let stopped = false, timer = null, busy = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden && !busy) {
      busy = true;
      try { await fn(); } catch (e) { console.warn(e); } finally { busy = false; }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => { stopped = true; clearTimeout(timer); };
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939", "#e6550d", "#7b4173", "#843c39", "#3182bd",
  "#31a354", "#756bb1", "#636363"];

function table(headers, rows, attrs) {
  return el("table", attrs || {class: "grid"},
    el("thead", {}, el("tr", {}, headers.map(h => h instanceof Node ? h : el("th", {}, h)))),
    el("tbody", {}, rows));
}

Object.assign(window.runhistory, {api, qs, el, clear, fmtNumber, fmtValue, fmtTime, fmtDuration, badge,
  showError, isLive, every, embedded, table, PALETTE, ApiError});

document.addEventListener("DOMContentLoaded", () => {
  const page = (embedded() && embedded().page) || document.body.dataset.page;
  const start = window.runhistory.pages && window.runhistory.pages[page];
  if (start) start().catch(e => showError(document.getElementById("main") || document.body, e));
});
