// Jobs: the queue (counts, jobs with their runs), the workers holding jobs, the schedules.
// The page polls every few seconds; the status filter lives in the URL.
import { api, formatTime, h, statusBadge, urlState } from "./app.js";

const REFRESH_MS = 3000;
const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];

function ago(now, seconds) {
  if (seconds === null || seconds === undefined) return "";
  const age = Math.max(0, now - seconds);
  return age < 60 ? `${age.toFixed(0)} s ago` : `${Math.floor(age / 60)} min ago`;
}

function runLinks(runs) {
  return runs.map((r, i) => h("span", {}, i ? ", " : "",
    h("a", { href: `/runs/${r.id}`, "data-nav": true }, `run ${r.id}`), ` (${r.status})`));
}

function table(id, head, rows) {
  return h("table", { class: "kv", id }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

export function jobsPage(main) {
  let stopped = false, timer = null;
  const filter = urlState.get("status", "");
  const counts = h("div", { class: "toolbar", id: "job-counts" });
  const select = h("select", { id: "job-status", onchange: () => {
    urlState.set({ status: select.value || null }); load(); } },
  h("option", { value: "" }, "every status"),
  STATUSES.map((s) => h("option", { value: s, selected: s === filter }, s)));
  const workersBox = h("div", { id: "workers" });
  const jobsBox = h("div", { class: "scroll-box", id: "jobs" });
  const schedulesBox = h("div", { id: "schedules" });
  main.append(h("h1", {}, "Jobs"), counts,
    h("div", { class: "toolbar" }, "show ", select, h("span", { class: "muted" }, " refreshed every few seconds")),
    jobsBox, h("h2", {}, "Workers"), workersBox, h("h2", {}, "Schedules"), schedulesBox);

  async function load() {
    let data;
    try {
      data = await api("/api/jobs", { status: urlState.get("status", "") });
    } catch (err) {
      jobsBox.replaceChildren(h("p", { class: "error" }, err.message));
      return;
    }
    if (!stopped) render(data);
  }

  function render(data) {
    counts.replaceChildren(...STATUSES.map((s) => h("span", { dataset: { count: s } },
      statusBadge(s), ` ${data.counts[s] ?? 0}  `)));
    jobsBox.replaceChildren(data.jobs.length ? table("jobs-table",
      ["id", "type", "status", "priority", "attempts", "worker", "what", "created", "finished", "runs", "error / reasons"],
      data.jobs.map((j) => h("tr", { dataset: { jobId: j.id } },
        h("td", {}, j.id), h("td", {}, j.job_type), h("td", {}, statusBadge(j.status)), h("td", {}, j.priority),
        h("td", {}, `${j.attempts}/${j.max_attempts}`), h("td", {}, j.worker_id ?? ""), h("td", {}, j.what),
        h("td", {}, formatTime(j.created_at)), h("td", {}, formatTime(j.finished_at)),
        h("td", {}, runLinks(j.runs)),
        h("td", { class: "error-text" }, j.error ?? j.reasons.join("; ")))))
      : h("p", { class: "muted", id: "jobs-empty" }, "no jobs"));
    workersBox.replaceChildren(data.workers.length ? table("workers-table", ["worker", "jobs", "last heartbeat"],
      data.workers.map((w) => h("tr", { dataset: { worker: w.worker_id ?? "" } }, h("td", {}, w.worker_id ?? "?"),
        h("td", {}, w.jobs.join(", ")), h("td", {}, ago(data.now, w.heartbeat_at)))))
      : h("p", { class: "muted" }, "no worker holds a job"));
    schedulesBox.replaceChildren(data.schedules.length ? table("schedules-table",
      ["name", "type", "cron", "time zone", "enabled", "next", "last", "catch-up", "what"],
      data.schedules.map((s) => h("tr", { dataset: { schedule: s.name } }, h("td", {}, s.name), h("td", {}, s.job_type),
        h("td", {}, s.schedule_expr), h("td", {}, s.timezone), h("td", {}, s.enabled ? "yes" : "no"),
        h("td", {}, formatTime(s.next_run_at)), h("td", {}, formatTime(s.last_run_at)), h("td", {}, s.catchup),
        h("td", {}, s.what))))
      : h("p", { class: "muted" }, "no schedules"));
  }

  load();
  timer = setInterval(load, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); };
}
