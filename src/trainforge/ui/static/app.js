// trainforge ui: a small router over pages whose whole state lives in the URL.
// User strings are only ever written with textContent (see h()), never as HTML.
import "./env.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { comparePage } from "./compare.js";
import { registryPage } from "./registry.js";
import { jobsPage } from "./jobs.js";

/** Create an element; string children become text nodes, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** GET a JSON endpoint; params with null/undefined/"" values are left out. */
export async function api(path, params = {}, options = {}) {
  const url = apiUrl(path, params);
  const response = await fetch(url, { signal: options.signal });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => query.append(key, v));
    else query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** The view state in the URL's query string. */
export const urlState = {
  get(name, fallback = null) {
    const value = new URLSearchParams(location.search).get(name);
    return value === null ? fallback : value;
  },
  list(name) {
    const value = this.get(name, "");
    return value ? value.split(",").filter(Boolean) : [];
  },
  /** Merge values into the URL without a new history entry (null removes a key, "" keeps it empty). */
  set(values) {
    const query = new URLSearchParams(location.search);
    for (const [key, value] of Object.entries(values)) {
      if (value === null || value === undefined) query.delete(key);
      else query.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    const text = query.toString();
    history.replaceState(null, "", location.pathname + (text ? `?${text}` : ""));
  },
};

export function navigate(url) {
  history.pushState(null, "", url);
  route();
}

export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.round((seconds % 3600) / 60)}m`;
}

export function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(5);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, dataset: { status } }, status);
}

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac"];
export function color(i) {
  if (i < PALETTE.length) return PALETTE[i];
  return `hsl(${(i * 137.508) % 360}, 60%, 50%)`;  // golden-angle hues past the palette
}

let cleanup = null;

export function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const main = document.getElementById("main");
  main.replaceChildren();
  const path = location.pathname;
  const runMatch = path.match(/^\/runs\/(\d+)$/);
  let page = "runs";
  if (runMatch) { page = "run"; cleanup = runPage(main, Number(runMatch[1])); }
  else if (path === "/compare") { page = "compare"; cleanup = comparePage(main); }
  else if (path === "/registry") { page = "registry"; cleanup = registryPage(main); }
  else if (path === "/jobs") { page = "jobs"; cleanup = jobsPage(main); }
  else cleanup = runsPage(main);
  document.body.dataset.page = page;
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", route);

api("/api/info").then((info) => {
  document.getElementById("store").textContent = `${info.store} · trainforge ${info.version}`;
}).catch(() => {});
route();
