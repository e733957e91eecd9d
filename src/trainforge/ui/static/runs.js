// Runs: a virtualized table over every run. Only the rows on screen are fetched (pages
// of 100 by offset, sorted and filtered on the server); live refresh asks only for the
// runs that changed since the last answer.
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect }
  from "./vendor/virtual-core/index.js";
import { api, formatDuration, formatTime, formatValue, h, navigate, statusBadge, urlState } from "./app.js";

const ROW = 28, PAGE = 100, LIVE_MS = 2000;

export function runsPage(main) {
  const state = {
    filter: urlState.get("filter", ""),
    sort: urlState.get("sort", ""),
    params: urlState.list("params"),
    metrics: urlState.get("metrics") === null ? null : urlState.list("metrics"),
    selected: new Set(urlState.list("sel").map(Number)),
  };
  let total = 0, cursor = null, generation = 0, timer = null, firstPaint = false;
  const rows = new Map();        // index -> run
  const indexOf = new Map();     // run id -> index
  const pending = new Set();     // page offsets being fetched

  const filterInput = h("input", { type: "text", class: "filter", value: state.filter,
    placeholder: "filter, e.g. metrics.val/loss < 0.4 and tags.baseline and attributes.status = 'completed'",
    onkeydown: (e) => { if (e.key === "Enter") applyFilter(); } });
  const errorBox = h("div", { class: "error", id: "filter-error" });
  const count = h("span", { class: "muted", id: "run-count" });
  const compareButton = h("button", { id: "compare", onclick: () =>
    navigate(`/compare?runs=${[...state.selected].join(",")}`) }, "Compare");
  const picker = h("div", { class: "picker", hidden: true, id: "column-picker" });
  const head = h("div", { class: "thead", id: "runs-head" });
  const spacer = h("div", { class: "spacer" });
  const scroller = h("div", { class: "scroller", id: "runs-scroller" }, spacer);
  main.append(
    h("div", { class: "toolbar" }, filterInput, h("button", { onclick: applyFilter }, "Apply"),
      h("button", { id: "columns", onclick: togglePicker }, "Columns"), compareButton, count),
    errorBox, picker, h("div", { class: "table" }, head, scroller));

  const virtualizer = new Virtualizer(virtualOptions());
  function virtualOptions() {
    return { count: total, getScrollElement: () => scroller, estimateSize: () => ROW, overscan: 10,
      scrollToFn: elementScroll, observeElementRect, observeElementOffset, onChange: renderRows };
  }
  const cleanupVirtualizer = virtualizer._didMount();
  virtualizer._willUpdate();

  function columns() {
    return [
      { id: "sel", label: "", width: "32px" },
      { id: "id", label: "id", sort: "attributes.id", width: "60px" },
      { id: "status", label: "status", sort: "attributes.status", width: "100px" },
      { id: "name", label: "name", sort: "attributes.name", width: "minmax(10em, 2fr)" },
      { id: "tags", label: "tags", width: "minmax(8em, 1.5fr)" },
      { id: "start", label: "started", sort: "attributes.start_time", width: "170px" },
      { id: "duration", label: "duration", sort: "attributes.duration", width: "90px" },
      ...state.params.map((k) => ({ id: `p:${k}`, label: k, sort: `params.${k}`, width: "minmax(6em, 1fr)" })),
      ...(state.metrics || []).map((k) => ({ id: `m:${k}`, label: k, sort: `metrics.${k}`, width: "minmax(6em, 1fr)" })),
    ];
  }

  function cell(run, column) {
    switch (column.id) {
      case "sel": return h("input", { type: "checkbox", checked: state.selected.has(run.run_id),
        onchange: (e) => toggleSelected(run.run_id, e.target.checked) });
      case "id": return String(run.run_id);
      case "status": return statusBadge(run.status);
      case "name": return h("a", { href: `/runs/${run.run_id}`, "data-nav": true, title: run.name }, run.name);
      case "tags": return Object.entries(run.tags).map(([k, v]) =>
        h("span", { class: "tag", title: `${k}=${v}` }, v === "true" ? k : `${k}=${v}`));
      case "start": return formatTime(run.start_time);
      case "duration": return formatDuration(run.duration_s ??
        (run.status === "running" ? Date.now() / 1000 - run.start_time : null));
      default: {
        const [kind, key] = [column.id.slice(0, 1), column.id.slice(2)];
        if (kind === "p") return formatValue(run.params[key]);
        const metric = run.metrics[key];
        return metric ? formatValue(metric.last) : "";
      }
    }
  }

  function renderHead() {
    const cols = columns();
    const template = cols.map((c) => c.width).join(" ");
    head.style.gridTemplateColumns = template;
    const [sortKey, sortDir] = state.sort ? state.sort.split(" ") : ["", ""];
    head.replaceChildren(...cols.map((c) => h("div", {
      title: c.sort ? `sort by ${c.sort}` : "", dataset: { sort: c.sort || "" },
      onclick: () => c.sort && setSort(c.sort, sortKey === c.sort && sortDir !== "desc" ? "desc" : "asc"),
    }, c.label, sortKey === c.sort ? (sortDir === "desc" ? " ▼" : " ▲") : "")));
    return template;
  }

  function renderRows() {
    const template = head.style.gridTemplateColumns;
    const items = virtualizer.getVirtualItems();
    spacer.style.height = `${virtualizer.getTotalSize()}px`;
    const cols = columns();
    const nodes = [];
    for (const item of items) {
      const run = rows.get(item.index);
      if (!run) { want(item.index); continue; }
      nodes.push(h("div", { class: `trow${state.selected.has(run.run_id) ? " selected" : ""}`,
        dataset: { runId: run.run_id, index: item.index },
        style: { transform: `translateY(${item.start}px)`, gridTemplateColumns: template } },
      ...cols.map((c) => h("div", { dataset: { col: c.id } }, cell(run, c)))));
    }
    spacer.replaceChildren(...nodes);
    if (nodes.length && !firstPaint) {
      firstPaint = true;
      performance.mark("runs-first-paint");
      document.body.dataset.runsPainted = String(performance.now());
    }
  }

  function query(extra = {}) {
    return { filter: state.filter, sort: state.sort || null, params: state.params.join(","),
      metrics: state.metrics === null ? undefined : state.metrics.join(","), ...extra };
  }

  async function want(index) {
    const offset = Math.floor(index / PAGE) * PAGE;
    if (pending.has(offset)) return;
    pending.add(offset);
    const mine = generation;
    try {
      const page = await api("/api/runs", { ...query(), offset, limit: PAGE });
      if (mine !== generation) return;
      accept(page, offset);
    } catch (err) {
      if (mine === generation) showError(err);
    } finally { pending.delete(offset); }
  }

  function accept(page, offset) {
    errorBox.textContent = "";
    if (state.metrics === null) { state.metrics = page.metrics; save(); }  // the server's defaults
    if (cursor === null) cursor = page.cursor;
    if (page.total !== total) {
      total = page.total;
      virtualizer.setOptions(virtualOptions());
      virtualizer._willUpdate();
    }
    page.runs.forEach((run, i) => { rows.set(offset + i, run); indexOf.set(run.run_id, offset + i); });
    count.textContent = `${total} runs`;
    renderHead();
    renderRows();
  }

  function showError(err) {
    const body = err.body || {};
    if (body.position !== undefined && body.position !== null && body.text !== undefined) {
      errorBox.textContent = `${body.error}\n${body.text}\n${" ".repeat(body.position)}^`;
    } else errorBox.textContent = err.message;
    count.textContent = "";
  }

  function reset() {
    generation += 1;
    rows.clear(); indexOf.clear(); pending.clear();
    cursor = null;
    want(virtualizer.getVirtualItems()[0]?.index || 0);
  }

  function save() {
    urlState.set({ filter: state.filter || null, sort: state.sort || null,
      params: state.params.length ? state.params.join(",") : null,
      metrics: state.metrics === null ? null : state.metrics.join(","),
      sel: state.selected.size ? [...state.selected].join(",") : null });
    compareButton.disabled = state.selected.size < 2;
    compareButton.textContent = `Compare (${state.selected.size})`;
  }

  function applyFilter() { state.filter = filterInput.value.trim(); save(); total = 0; reset(); }
  function setSort(key, dir) { state.sort = `${key} ${dir}`; save(); reset(); }
  function toggleSelected(id, on) {
    if (on) state.selected.add(id); else state.selected.delete(id);
    save(); renderRows();
  }

  async function togglePicker() {
    picker.hidden = !picker.hidden;
    if (picker.hidden || picker.childElementCount) return;
    const keys = await api("/api/columns");
    const box = (kind, key) => h("label", { title: key }, h("input", { type: "checkbox",
      checked: (kind === "params" ? state.params : state.metrics || []).includes(key),
      dataset: { kind, key },
      onchange: (e) => {
        const list = kind === "params" ? state.params : (state.metrics = state.metrics || []);
        if (e.target.checked) list.push(key); else list.splice(list.indexOf(key), 1);
        save(); renderHead(); reset();
      } }), ` ${kind}.${key}`);
    picker.replaceChildren(...keys.metrics.map((k) => box("metrics", k)), ...keys.params.map((k) => box("params", k)));
  }

  async function live() {
    if (cursor === null) return;
    let page;
    try { page = await api("/api/runs", { ...query(), since: cursor, limit: 1000 }); } catch { return; }
    cursor = page.cursor;
    let fresh = false;
    for (const run of page.runs) {
      const index = indexOf.get(run.run_id);
      if (index === undefined) fresh = true; else rows.set(index, run);
    }
    if (fresh) {  // new runs move every row below them: re-read the window on screen
      generation += 1; rows.clear(); indexOf.clear(); pending.clear();
      const mine = generation;
      const first = virtualizer.getVirtualItems()[0]?.index || 0;
      const offset = Math.floor(first / PAGE) * PAGE;
      try {
        const window_ = await api("/api/runs", { ...query(), offset, limit: PAGE });
        if (mine === generation) { cursor = Math.min(cursor, window_.cursor); accept(window_, offset); }
      } catch { /* next tick retries */ }
    } else if (page.runs.length) renderRows();
  }

  save();
  renderHead();
  want(0);
  timer = setInterval(live, LIVE_MS);
  return () => { clearInterval(timer); generation += 1; cleanupVirtualizer && cleanupVirtualizer(); };
}
