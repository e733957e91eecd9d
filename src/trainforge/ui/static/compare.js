// Compare: overlaid curves of one metric for 2 to hundreds of runs, a params table that
// can show only what differs, and parallel coordinates of params against a metric.
import { api, color, formatValue, h, urlState } from "./app.js";
import { createChart } from "./chart.js";
import { drawParallel } from "./parallel.js";

const IGNORED = new Set(["run_id", "name", "experiment", "status", "duration_s", "project",
  "start_time", "end_time", "heartbeat_at", "tags", "params", "metrics"]);

export function comparePage(main) {
  const ids = urlState.list("runs").map(Number).filter(Number.isFinite);
  let chart = null;
  if (ids.length < 1) {
    main.append(h("p", { class: "muted", id: "compare-empty" },
      "Select runs on the Runs page (the checkboxes), then press Compare."));
    return () => {};
  }
  main.append(h("p", { class: "muted" }, `Loading ${ids.length} runs…`));
  // With the metric in the URL the curves load while the runs' params do; names come later.
  const chartBox = h("div", { class: "chart", id: "compare-chart" });
  const early = urlState.get("metric");
  if (early) {
    main.append(chartBox);
    chart = createChart(chartBox, { key: early, title: early, xAxis: urlState.get("x", "step"),
      runs: ids.map((id, i) => ({ id, label: `run ${id}`, color: color(i) })),
      smoothing: Number(urlState.get("smooth", "0")), log: urlState.get("log") === "1",
      zoom: urlState.get("xmin") !== null && urlState.get("xmax") !== null
        ? [Number(urlState.get("xmin")), Number(urlState.get("xmax"))] : null,
      onZoom: (lo, hi) => zoomTo(lo, hi), live: false, height: 360 });
  }
  let zoomTo = () => {};
  let stopped = false;
  api("/api/compare", { runs: ids.join(",") }).then((data) => { if (!stopped) render(data); })
    .catch((err) => main.replaceChildren(h("p", { class: "error" }, err.message)));

  function render(data) {
    const runs = data.runs;
    const series = runs.map((r, i) => ({ id: r.run_id, label: `${r.run_id} ${r.name}`, color: color(i) }));
    const metrics = data.metrics;
    const state = {
      metric: urlState.get("metric") || metrics.find((m) => m.startsWith("val/")) || metrics[0] || "",
      x: urlState.get("x", "step"),
      smooth: Number(urlState.get("smooth", "0")),
      log: urlState.get("log") === "1",
      diff: urlState.get("diff", "1") === "1",
      zoom: urlState.get("xmin") !== null && urlState.get("xmax") !== null
        ? [Number(urlState.get("xmin")), Number(urlState.get("xmax"))] : null,
    };
    const save = () => urlState.set({ metric: state.metric, x: state.x, smooth: state.smooth || null,
      log: state.log ? "1" : null, diff: state.diff ? "1" : "0",
      xmin: state.zoom ? state.zoom[0] : null, xmax: state.zoom ? state.zoom[1] : null });
    save();

    const metricSelect = h("select", { id: "metric", onchange: () => {
      state.metric = metricSelect.value; state.zoom = null; save();
      chart.update({ key: state.metric, title: state.metric, zoom: null }); drawPc(); } },
    metrics.map((m) => h("option", { value: m, selected: m === state.metric }, m)));
    const xSelect = h("select", { id: "x-axis", onchange: () => {
      state.x = xSelect.value; state.zoom = null; save(); chart.update({ xAxis: state.x, zoom: null }); } },
    ["step", "epoch", "time"].map((x) => h("option", { value: x, selected: x === state.x }, x === "time" ? "wall time" : x)));
    const smoothLabel = h("span", {}, state.smooth.toFixed(2));
    const smoothInput = h("input", { type: "range", id: "smoothing", min: "0", max: "0.99", step: "0.01",
      value: String(state.smooth), oninput: () => {
        state.smooth = Number(smoothInput.value); smoothLabel.textContent = state.smooth.toFixed(2);
        save(); chart.update({ smoothing: state.smooth }); } });
    const logBox = h("input", { type: "checkbox", id: "log-scale", checked: state.log, onchange: () => {
      state.log = logBox.checked; save(); chart.update({ log: state.log }); } });
    const reset = h("button", { id: "reset-zoom", onclick: () => onZoom(null, null) }, "Reset zoom");
    const diffBox = h("input", { type: "checkbox", id: "only-differ", checked: state.diff, onchange: () => {
      state.diff = diffBox.checked; save(); fillParams(); } });
    const paramsBox = h("div", { class: "scroll-box", id: "compare-params" });
    const pcCanvas = h("canvas", { class: "pc", id: "parallel" });

    main.replaceChildren(
      h("h1", {}, `Compare ${runs.length} runs`),
      h("div", { class: "toolbar" }, "metric ", metricSelect, " x ", xSelect, " smoothing ", smoothInput,
        smoothLabel, h("label", {}, logBox, " log scale"), reset,
        h("span", { class: "muted" }, "drag to zoom, double-click to reset")),
      chartBox,
      h("h2", {}, "Params"), h("div", { class: "toolbar" }, h("label", {}, diffBox, " only what differs")),
      paramsBox,
      h("h2", {}, "Parallel coordinates"),
      h("p", { class: "muted" }, "numeric params that differ, and the last value of the chosen metric"),
      pcCanvas);

    function onZoom(lo, hi) {
      state.zoom = lo === null ? null : [lo, hi];
      save();
      chart.update({ zoom: state.zoom });
    }
    zoomTo = onZoom;
    const live = runs.some((r) => r.status === "running");
    if (chart && state.metric === early) chart.update({ runs: series, live });
    else {
      if (chart) chart.destroy();
      chart = createChart(chartBox, { key: state.metric, title: state.metric, runs: series,
        xAxis: state.x, smoothing: state.smooth, log: state.log, zoom: state.zoom, onZoom, live,
        height: 360 });
    }

    const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r).filter((k) => k.startsWith("params."))))].sort();
    const differs = (key) => new Set(runs.map((r) => JSON.stringify(r[key] ?? null))).size > 1;
    function fillParams() {
      const keys = state.diff ? paramKeys.filter(differs) : paramKeys;
      paramsBox.replaceChildren(h("table", { class: "kv" },
        h("thead", {}, h("tr", {}, h("th", {}, "param"), runs.map((r, i) =>
          h("th", { style: { color: color(i) }, title: r.name }, `${r.run_id} ${r.name}`)))),
        h("tbody", {}, keys.map((key) => h("tr", { dataset: { key } }, h("td", {}, key.slice(7)),
          runs.map((r) => h("td", {}, formatValue(r[key]))))))));
      if (!keys.length) paramsBox.append(h("p", { class: "muted" }, "all params are equal"));
    }
    function drawPc() {
      const axes = paramKeys.filter((k) => differs(k) && runs.every((r) => r[k] === undefined || r[k] === null || typeof r[k] === "number")).slice(0, 8);
      drawParallel(pcCanvas, runs, axes.map((k) => ({ key: k, label: k.slice(7) })),
        { key: `metrics.${state.metric}`, label: state.metric });
    }
    fillParams();
    drawPc();
  }

  return () => { stopped = true; if (chart) chart.destroy(); };
}
