// Run: everything about one run: params with provenance, tags, curves, checkpoints
// (verified on request), system info, the command line and the logger folders.
import { api, apiUrl, formatDuration, formatTime, formatValue, h, statusBadge, urlState, color } from "./app.js";
import { createChart } from "./chart.js";

const DEFAULT_CHARTS = 4;

export function runPage(main, runId) {
  const charts = [];
  let stopped = false;
  main.append(h("p", { class: "muted" }, `Loading run ${runId}…`));
  api(`/api/runs/${runId}`).then((run) => { if (!stopped) render(run); }).catch((err) => {
    main.replaceChildren(h("p", { class: "error", id: "run-error" }, err.message));
  });

  function render(run) {
    const files = run.files || {};
    const chosen = urlState.get("metrics") === null ? defaultMetrics(run) : urlState.list("metrics");
    const chartBox = h("div", { class: "grid2", id: "run-charts" });
    main.replaceChildren(
      h("h1", { id: "run-title" }, run.name, " ", statusBadge(run.status)),
      h("p", { class: "muted" }, `run ${run.run_id} · ${run.project} / ${run.experiment} · started ${formatTime(run.start_time)}`,
        run.duration_s !== null ? ` · ${formatDuration(run.duration_s)}` : "", run.host ? ` · host ${run.host}` : "",
        run.git_commit ? ` · commit ${run.git_commit.slice(0, 12)}` : ""),
      h("h2", {}, "Metrics"),
      metricTable(run, chosen, (keys) => { urlState.set({ metrics: keys.join(",") }); drawCharts(keys); }),
      chartBox,
      h("h2", {}, "Checkpoints"), checkpointSection(run, files),
      h("h2", {}, "Command line"), files.command ? h("pre", { class: "code", id: "run-command" }, files.command)
        : h("p", { class: "muted" }, "no command.txt found in the run folder"),
      h("h2", {}, "Folders"), folderSection(files),
      h("h2", {}, "Tags"), kvTable(["tag", "value"], Object.entries(run.tags), "run-tags"),
      h("h2", {}, "Params"), paramsSection(run),
      h("h2", {}, "System"), kvTable(["field", "value"], Object.entries(run.system || {}), "run-system"),
      run.notes ? h("div", {}, h("h2", {}, "Notes"), h("pre", { class: "code" }, run.notes)) : null,
    );
    drawCharts(chosen);

    function drawCharts(keys) {
      charts.splice(0).forEach((c) => c.destroy());
      chartBox.replaceChildren();
      for (const key of keys) {
        const box = h("div", { class: "chart", dataset: { key } });
        chartBox.append(box);
        charts.push(createChart(box, { key, runs: [{ id: run.run_id, label: run.name, color: color(0) }],
          live: run.status === "running" }));
      }
    }
  }

  return () => { stopped = true; charts.forEach((c) => c.destroy()); };
}

function defaultMetrics(run) {
  const keys = Object.keys(run.metrics).filter((k) => !/^(grad|weights|system|health)\//.test(k) && k !== "epoch");
  keys.sort((a, b) => (a.includes("loss") ? 0 : 1) - (b.includes("loss") ? 0 : 1) || a.localeCompare(b));
  return keys.slice(0, DEFAULT_CHARTS);
}

function metricTable(run, chosen, onChange) {
  const selected = new Set(chosen);
  const rows = Object.entries(run.metrics).sort(([a], [b]) => a.localeCompare(b)).map(([key, m]) => h("tr", { dataset: { key } },
    h("td", {}, h("input", { type: "checkbox", checked: selected.has(key), title: "draw this metric",
      onchange: (e) => { if (e.target.checked) selected.add(key); else selected.delete(key);
        onChange([...Object.keys(run.metrics)].filter((k) => selected.has(k))); } })),
    h("td", {}, key), h("td", {}, formatValue(m.last)), h("td", {}, formatValue(m.min)),
    h("td", {}, formatValue(m.max)), h("td", {}, String(m.step)), h("td", {}, String(m.count)),
    h("td", {}, h("a", { href: apiUrl("/api/points", { run: run.run_id, key, format: "csv" }), download: "" }, "CSV"), " ",
      h("a", { href: apiUrl("/api/points", { run: run.run_id, key, format: "json" }), download: "" }, "JSON"))));
  return h("div", { class: "scroll-box" }, h("table", { class: "kv", id: "run-metrics" },
    h("thead", {}, h("tr", {}, ...["draw", "metric", "last", "min", "max", "step", "points", "every point"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

function kvTable(headers, rows, id) {
  if (!rows.length) return h("p", { class: "muted" }, "none");
  return h("div", { class: "scroll-box" }, h("table", { class: "kv", id },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, formatValue(c))))))));
}

function paramsSection(run) {
  const provenance = run.provenance || {};
  const search = h("input", { type: "search", placeholder: "search params", oninput: () => fill() });
  const body = h("tbody");
  const keys = Object.keys(run.params).sort();
  function fill() {
    const q = search.value.toLowerCase();
    body.replaceChildren(...keys.filter((k) => k.toLowerCase().includes(q)).map((key) => {
      const p = provenance[key];
      const where = p ? `(${[p.source, ...(p.tags || [])].join("; ")})` : "";
      return h("tr", {}, h("td", {}, key), h("td", {}, formatValue(run.params[key])),
        h("td", { class: "muted", title: p && p.reasons && p.reasons.length ? p.reasons.join("; ") : "" }, where));
    }));
  }
  fill();
  return h("div", {}, h("div", { class: "toolbar" }, search),
    h("div", { class: "scroll-box" }, h("table", { class: "kv", id: "run-params" },
      h("thead", {}, h("tr", {}, h("th", {}, "param"), h("th", {}, "value"), h("th", {}, "provenance"))), body)));
}

function folderSection(files) {
  if (!files.folder) return h("p", { class: "muted" }, "the run folder was not found on this machine");
  const items = [h("li", {}, "run folder: ", h("a", { href: `file://${files.folder}` }, files.folder))];
  for (const f of files.folders) {
    items.push(h("li", {}, `${f.kind}: `, h("a", { href: `file://${f.path}` }, f.path),
      f.kind === "tensorboard" ? h("code", {}, `  tensorboard --logdir ${f.path}`) : null));
  }
  return h("ul", { id: "run-folders" }, items);
}

function checkpointSection(run, files) {
  const box = h("div", { id: "run-checkpoints" });
  const show = (list, verified) => {
    if (!list.length) { box.replaceChildren(h("p", { class: "muted" }, "no checkpoints found")); return; }
    const button = h("button", { id: "verify", onclick: async () => {
      button.disabled = true; button.textContent = "Verifying…";
      const answer = await api(`/api/runs/${run.run_id}/checkpoints`, { verify: 1 });
      show(answer.checkpoints, true);
    } }, "Verify hashes");
    box.replaceChildren(verified ? h("span") : button, h("table", { class: "kv" },
      h("thead", {}, h("tr", {}, ["checkpoint", "flags", "epoch", "step", "metrics", "size", "recorded", "verified"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((c) => h("tr", { dataset: { name: c.name } },
        h("td", {}, c.name), h("td", {}, (c.flags || []).join(", ")), h("td", {}, formatValue(c.epoch)),
        h("td", {}, formatValue(c.global_step)),
        h("td", {}, Object.entries(c.metrics || {}).map(([k, v]) => `${k}=${formatValue(v)}`).join("  ")),
        h("td", {}, c.size_bytes !== undefined ? `${(c.size_bytes / 1e6).toFixed(2)} MB` : ""),
        h("td", {}, c.manifest_matches_record === undefined ? "" : c.manifest_matches_record ? "matches" : "CHANGED"),
        h("td", { class: "verified" }, c.ok === undefined ? (verified ? "" : "not checked") :
          c.ok ? "ok" : `FAILED: ${c.problem || ""}`))))));
  };
  show(files.checkpoints || [], false);
  return box;
}
