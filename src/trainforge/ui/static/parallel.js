// Parallel coordinates on a canvas: one vertical axis per numeric param, the last axis the
// chosen metric; each run a polyline coloured by its metric value. Labels are canvas text.
function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export function drawParallel(canvas, runs, axes, metric) {
  const all = [...axes, metric];
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800, height = canvas.clientHeight || 320;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = cssVar("--fg");
  canvas.dataset.axes = String(all.length);
  const values = runs.filter((r) => typeof r[metric.key] === "number");
  canvas.dataset.lines = String(values.length);
  if (!values.length) {
    ctx.fillText(`no run has a value of ${metric.label}`, 10, 20);
    return;
  }
  const top = 30, bottom = height - 20, left = 60, right = width - 60;
  const step = all.length > 1 ? (right - left) / (all.length - 1) : 0;
  const ranges = all.map((a) => {
    const nums = values.map((r) => r[a.key]).filter((v) => typeof v === "number");
    const lo = Math.min(...nums), hi = Math.max(...nums);
    return [lo, hi === lo ? lo + 1 : hi];
  });
  const y = (i, v) => bottom - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (bottom - top);
  const [mlo, mhi] = ranges[all.length - 1];
  for (const run of values) {
    const t = (run[metric.key] - mlo) / (mhi - mlo || 1);
    ctx.strokeStyle = `hsl(${240 - 240 * t}, 70%, 50%)`;
    ctx.globalAlpha = values.length > 50 ? 0.5 : 0.9;
    ctx.beginPath();
    let started = false;
    all.forEach((a, i) => {
      const v = run[a.key];
      if (typeof v !== "number") { started = false; return; }
      const px = left + i * step, py = y(i, v);
      if (started) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      started = true;
    });
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.strokeStyle = cssVar("--muted");
  all.forEach((a, i) => {
    const px = left + i * step;
    ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, bottom); ctx.stroke();
    ctx.textAlign = i === 0 ? "left" : i === all.length - 1 ? "right" : "center";
    ctx.fillText(a.label.length > 24 ? `…${a.label.slice(-23)}` : a.label, px, top - 12);
    ctx.fillText(String(+ranges[i][1].toPrecision(4)), px, top - 1);
    ctx.fillText(String(+ranges[i][0].toPrecision(4)), px, bottom + 14);
  });
}
