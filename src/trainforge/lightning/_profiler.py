"""Profilers: Lightning's Simple/Advanced/PyTorch profilers, and a top-operators table.

The PyTorch profiler records a fixed window of steps (``wait`` skipped, ``warmup``
recorded and discarded, ``active`` kept, ``repeat`` cycles) instead of the whole run:
profiling every step costs more than the steps. Each active window is exported as a
Chrome/Perfetto trace (``*.pt.trace.json``, also read by TensorBoard's profiler plugin).
A schedule longer than the run never reaches an active step and records nothing, so
:func:`build_profiler` warns when it knows the run is that short.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.profilers import (
    AdvancedProfiler,
    Profiler,
    PyTorchProfiler,
    SimpleProfiler,
)

__all__ = ["build_profiler", "top_operators_table"]

logger = logging.getLogger(__name__)

ProfilerKind = Literal["simple", "advanced", "pytorch"]


def build_profiler(
    kind: ProfilerKind = "pytorch",
    *,
    dirpath: str | Path,
    filename: str = "profile",
    schedule: tuple[int, int, int, int] = (1, 1, 3, 1),
    memory: bool = False,
    total_steps: int | None = None,
) -> Profiler:
    """A Lightning profiler writing under ``dirpath``.

    Args:
        kind: ``simple`` (time per hook), ``advanced`` (cProfile per hook) or ``pytorch``
            (operators, traces, optionally memory).
        dirpath: Where summaries and traces go.
        filename: Stem of the summary files.
        schedule: PyTorch profiler ``(wait, warmup, active, repeat)``; repeat 0 = until
            the end.
        memory: Record tensor memory per operator (PyTorch profiler).
        total_steps: Training steps of the run, if known: warns when the schedule never
            reaches an active step.

    Raises:
        ValueError: An unknown ``kind`` or an invalid schedule.

    Examples:
        >>> import tempfile
        >>> type(build_profiler("simple", dirpath=tempfile.mkdtemp())).__name__
        'SimpleProfiler'
    """
    Path(dirpath).mkdir(parents=True, exist_ok=True)
    if kind == "simple":
        return SimpleProfiler(dirpath=dirpath, filename=filename)
    if kind == "advanced":
        return AdvancedProfiler(dirpath=dirpath, filename=filename)
    if kind != "pytorch":
        raise ValueError(f"profiler kind must be simple, advanced or pytorch, got {kind!r}")
    wait, warmup, active, repeat = schedule
    if min(wait, warmup, repeat) < 0 or active < 1:
        raise ValueError(
            f"profiler schedule (wait, warmup, active, repeat) needs non-negative values and "
            f"active >= 1, got {schedule}"
        )
    first_active_end = wait + warmup + active
    if total_steps is not None and total_steps < first_active_end:
        message = (
            f"the profiler schedule wait={wait} warmup={warmup} active={active} needs "
            f"{first_active_end} steps, but the run has {total_steps}: no step will be "
            "recorded; lower callbacks.profiler.schedule.wait/warmup/active"
        )
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return PyTorchProfiler(
        dirpath=dirpath,
        filename=filename,
        export_to_chrome=True,
        schedule=torch.profiler.schedule(wait=wait, warmup=warmup, active=active, repeat=repeat),
        profile_memory=memory,
        record_shapes=memory,
    )


def top_operators_table(
    profiler_or_dir: Profiler | str | Path, n: int = 15, *, save_to: str | Path | None = None
) -> str:
    """A table of the ``n`` operators with the most self time, saved as text.

    Ranked by self CPU time, or by self CUDA time when the run recorded device time;
    a self-memory column is added when memory was profiled.

    Args:
        profiler_or_dir: A PyTorchProfiler after the fit (its recorded events), or a
            directory of ``*.pt.trace.json`` traces.
        n: Rows.
        save_to: The text file (default: ``top_operators.txt`` in the profiler's
            ``dirpath`` or the given directory).

    Returns:
        The table ("" when nothing was recorded).
    """
    if isinstance(profiler_or_dir, PyTorchProfiler):
        rows = _rows_from_events(profiler_or_dir)
        directory = Path(profiler_or_dir.dirpath or ".")
    elif isinstance(profiler_or_dir, Profiler):
        raise TypeError(
            f"the operator table needs the PyTorch profiler; got {type(profiler_or_dir).__name__}"
        )
    else:
        directory = Path(profiler_or_dir)
        rows = _rows_from_traces(directory)
    if not rows:
        return ""
    # on a GPU the device time is what the step waits for: rank by it when recorded
    has_device = any(r[4] for r in rows)
    rows.sort(key=lambda r: (r[4], r[1]) if has_device else r[1], reverse=True)
    has_memory = any(r[3] for r in rows)
    header = f"{'operator':<48} {'self CPU ms':>12} {'calls':>8}"
    header += f" {'self CUDA ms':>12}" if has_device else ""
    header += f" {'self CPU MB':>12}" if has_memory else ""
    lines = [header, "-" * len(header)]
    for name, self_us, calls, mem, device_us in rows[:n]:
        line = f"{name[:48]:<48} {self_us / 1e3:>12.3f} {calls:>8d}"
        line += f" {device_us / 1e3:>12.3f}" if has_device else ""
        line += f" {mem / 2**20:>12.3f}" if has_memory else ""
        lines.append(line)
    table = "\n".join(lines)
    out = Path(save_to) if save_to is not None else directory / "top_operators.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    return table


def _rows_from_events(profiler: PyTorchProfiler) -> list[tuple[str, float, int, int, float]]:
    events = profiler.function_events
    if not events:
        return []
    return [
        (
            e.key,
            float(e.self_cpu_time_total),
            int(e.count),
            int(e.self_cpu_memory_usage),
            float(getattr(e, "self_device_time_total", 0.0) or 0.0),
        )
        for e in events.key_averages()
    ]


def _rows_from_traces(directory: Path) -> list[tuple[str, float, int, int, float]]:
    """Self time per operator: each op's duration minus its direct children's, per thread."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for trace in sorted(directory.rglob("*.pt.trace.json")):
        events = json.loads(trace.read_text()).get("traceEvents", [])
        ops = [e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op"]
        by_thread: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for op in ops:
            by_thread[(op.get("pid"), op.get("tid"))].append(op)
        for thread_ops in by_thread.values():
            thread_ops.sort(key=lambda e: (e["ts"], -e["dur"]))
            stack: list[list[Any]] = []  # [end, name, self time]
            for op in thread_ops:
                start, dur = float(op["ts"]), float(op["dur"])
                while stack and stack[-1][0] <= start:
                    _close(stack.pop(), totals)
                if stack:
                    stack[-1][2] -= dur
                stack.append([start + dur, op["name"], dur])
            while stack:
                _close(stack.pop(), totals)
    return [(name, t, int(c), 0, 0.0) for name, (t, c) in totals.items()]


def _close(entry: list[Any], totals: dict[str, list[float]]) -> None:
    totals[entry[1]][0] += max(entry[2], 0.0)
    totals[entry[1]][1] += 1
