// Registry: model names, their versions with tags and aliases, every label move, lineage.
import { api, formatTime, formatValue, h } from "./app.js";

export function registryPage(main) {
  let stopped = false;
  main.append(h("p", { class: "muted" }, "Loading the registry…"));
  api("/api/registry").then((data) => { if (!stopped) render(data); })
    .catch((err) => main.replaceChildren(h("p", { class: "error" }, err.message)));

  function render(data) {
    const byName = new Map();
    for (const m of data.models) { if (!byName.has(m.name)) byName.set(m.name, []); byName.get(m.name).push(m); }
    const lineageBox = h("div", { id: "lineage" });
    main.replaceChildren(h("h1", {}, "Model registry"));
    if (!byName.size) { main.append(h("p", { class: "muted", id: "registry-empty" }, "no registered models")); return; }
    for (const [name, versions] of byName) {
      main.append(h("h2", {}, name), h("table", { class: "kv", dataset: { model: name } },
        h("thead", {}, h("tr", {}, ["version", "tags", "aliases", "run", "metrics", "size", "created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, versions.map((m) => h("tr", { dataset: { modelId: m.id } },
          h("td", {}, `v${m.version}`), h("td", {}, m.tags.join(", ")), h("td", {}, m.aliases.join(", ")),
          h("td", {}, m.training_run_id !== null ? h("a", { href: `/runs/${m.training_run_id}`, "data-nav": true }, `run ${m.training_run_id}`) : ""),
          h("td", {}, Object.entries(m.metrics || {}).map(([k, v]) => `${k}=${formatValue(v)}`).join("  ")),
          h("td", {}, m.model_size_mb !== null ? `${formatValue(m.model_size_mb)} MB` : ""),
          h("td", {}, formatTime(m.created_at)),
          h("td", {}, h("button", { onclick: () => showLineage(m.id) }, "lineage")))))));
      const moves = data.history[name] || [];
      if (moves.length) {
        main.append(h("details", {}, h("summary", {}, `${moves.length} tag and alias moves`),
          h("table", { class: "kv" }, h("thead", {}, h("tr", {}, ["when", "label", "kind", "to", "from"].map((t) => h("th", {}, t)))),
            h("tbody", {}, moves.map((mv) => h("tr", {}, h("td", {}, formatTime(mv.changed_at)), h("td", {}, mv.label),
              h("td", {}, mv.kind), h("td", {}, mv.model_id ?? "removed"), h("td", {}, mv.previous_model_id ?? "")))))));
      }
    }
    main.append(h("h2", {}, "Lineage"), lineageBox);

    async function showLineage(id) {
      const data = await api(`/api/registry/${id}/lineage`);
      lineageBox.replaceChildren(h("ol", {}, data.lineage.map((step) => h("li", {},
        `${step.model.name} v${step.model.version} (id ${step.model.id})`,
        step.run ? h("span", {}, " ← trained by ", h("a", { href: `/runs/${step.run.id}`, "data-nav": true },
          `run ${step.run.id} ${step.run.name}`), ` (${step.run.status})`) : ""))));
    }
  }
  return () => { stopped = true; };
}
