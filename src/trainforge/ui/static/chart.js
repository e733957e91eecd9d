// One metric of one or more runs, drawn with uPlot from server-side min/max buckets.
// The server sizes the buckets to the chart's width; a drag-zoom asks it again for the
// narrower range (raw points once few enough); double-click returns to the full range.
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { api, apiUrl, h } from "./app.js";

const LIVE_MS = 3000;

/** TensorBoard-style debiased exponential moving average; nulls stay null. */
export function smooth(values, weight) {
  if (!weight) return values;
  let last = 0, count = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - weight ** count);
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || undefined;
}

/**
 * Draw a chart into `container` and keep it live.
 * options: {runs: [{id, label, color}], key, xAxis, smoothing, log, zoom: [lo, hi] | null,
 *           onZoom(lo, hi) (null, null on reset), live, height}
 * Returns {destroy(), update(partialOptions)}.
 */
export function createChart(container, options) {
  let opts = { xAxis: "step", smoothing: 0, log: false, zoom: null, live: true, height: 280, ...options };
  let plot = null, window_ = null, timer = null, heads = {}, controller = null, destroyed = false;
  const body = h("div", { class: "chart-body" });
  const note = h("span", { class: "muted" });
  container.replaceChildren(h("div", { class: "title" }, h("span", {}, opts.title || opts.key), note), body);

  function width() { return Math.max(200, Math.floor(body.clientWidth || container.clientWidth || 600) - 10); }

  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const params = { runs: opts.runs.map((r) => r.id).join(","), key: opts.key, x: opts.xAxis,
      points: width(), lo: opts.zoom ? opts.zoom[0] : null, hi: opts.zoom ? opts.zoom[1] : null };
    container.dataset.url = apiUrl("/api/series", params);
    try {
      window_ = await api("/api/series", params, { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      note.textContent = `error: ${err.message}`;
      return;
    }
    draw();
  }

  function seriesData() {
    const byId = new Map(window_.runs.map((r) => [r.run_id, r]));
    return opts.runs.map((run) => {
      const found = byId.get(run.id);
      let ys = found ? smooth(found.y, opts.smoothing) : window_.x.map(() => null);
      if (opts.log) ys = ys.map((v) => (v !== null && v > 0 ? v : null));
      return ys;
    });
  }

  function draw() {
    if (destroyed) return;
    const data = [window_.x, ...seriesData()];
    const total = window_.runs.reduce((sum, r) => sum + r.count, 0);
    note.textContent = window_.raw ? `${total} points` :
      `${total} points in ${window_.buckets} min/max buckets`;
    container.dataset.points = String(window_.x.length);
    container.dataset.series = String(opts.runs.length);
    container.dataset.raw = String(window_.raw);
    if (plot) plot.destroy();
    plot = null;
    body.replaceChildren();
    if (!window_.x.length) {
      body.append(h("p", { class: "muted" }, "no points logged for this metric"));
      container.dataset.drawn = "empty";
      return;
    }
    const fg = cssVar("--fg"), grid = cssVar("--grid");
    const axis = { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } };
    const config = {
      width: width(), height: opts.height,
      scales: { x: { time: false }, y: opts.log ? { distr: 3 } : {} },
      axes: [{ ...axis, label: opts.xAxis === "time" ? "seconds since start" : opts.xAxis },
        { ...axis, size: 60 }],
      series: [{ label: opts.xAxis, value: (u, v) => (v === null ? "" : +v.toPrecision(6)) },
        ...opts.runs.map((run) => ({ label: run.label, stroke: run.color, width: 1.25,
          spanGaps: true, points: { show: window_.raw && window_.x.length < 60 } }))],
      cursor: { drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => () => { opts.onZoom && opts.onZoom(null, null); return null; } } },
      legend: { show: opts.runs.length <= 20 },
      hooks: { setSelect: [(u) => {
        if (u.select.width < 2) return;
        const lo = u.posToVal(u.select.left, "x");
        const hi = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        opts.onZoom && opts.onZoom(lo, hi);
      }] },
    };
    plot = new uPlot(config, data, body);
    container.dataset.drawn = "yes";
    container.dataset.drawnAt = String(performance.now());  // benchmarks read this
  }

  async function poll() {
    if (destroyed || !window_) return;
    let fresh;
    try {
      fresh = await api("/api/series/heads", { runs: opts.runs.map((r) => r.id).join(","), key: opts.key });
    } catch { return; }
    const changed = Object.keys(fresh).filter((id) =>
      !heads[id] || heads[id].count !== fresh[id].count || heads[id].last_step !== fresh[id].last_step);
    const first = !Object.keys(heads).length;
    heads = fresh;
    if (first || !changed.length || opts.zoom) return;
    if (window_.raw && window_.x.length) {  // only the points after the last one held
      const after = window_.x[window_.x.length - 1];
      const extra = await api("/api/series", { runs: changed.join(","), key: opts.key,
        x: opts.xAxis, points: width(), after }).catch(() => null);
      if (extra && extra.raw && window_.x.length + extra.x.length <= 2 * width()) {
        const add = new Map(extra.runs.map((r) => [r.run_id, r]));
        for (const run of window_.runs) {
          const more = add.get(run.run_id);
          run.y = run.y.concat(more ? more.y : extra.x.map(() => null));
          run.count += more ? more.count : 0;
        }
        window_.x = window_.x.concat(extra.x);
        draw();
        return;
      }
    }
    load();  // bucketed: the buckets themselves move, so ask for the whole range again
  }

  load();
  if (opts.live) timer = setInterval(poll, LIVE_MS);
  if (opts.live) poll();

  return {
    destroy() { destroyed = true; clearInterval(timer); if (controller) controller.abort(); if (plot) plot.destroy(); },
    update(changes) {
      const ids = (runs) => runs.map((r) => r.id).join(",");
      const refetch = ["key", "xAxis", "zoom"].some((k) => k in changes) ||
        ("runs" in changes && ids(changes.runs) !== ids(opts.runs));
      opts = { ...opts, ...changes };
      if (opts.live && !timer) { timer = setInterval(poll, LIVE_MS); poll(); }
      if (refetch) { heads = {}; load(); } else if (window_) draw();
    },
    get plot() { return plot; },
  };
}
