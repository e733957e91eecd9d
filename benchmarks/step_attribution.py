"""Each feature's own per-step cost, timed inside one default run (in-run attribution).

The rows of ``bench_step_overhead.py`` give a feature's cost as the difference between two
runs; on a shared machine two runs differ by more than 25 us a step for reasons of their
own. Here one worker trains the defaults once (a warm-up epoch, then ``LONG`` timed
epochs) with every feature's per-step entry points wrapped in a timer, so the features
are timed in the same run, on the same steps:

- the time inside each entry point, exclusive of any other entry point it calls (the
  wrapper's own cost, measured on a no-op in the same process, is taken off per call);
- the CPU time of the threads a feature starts (the tracker's writer, the progress bar's
  refresh), read from the thread's own clock: on a 2-core machine it runs beside the step
  but it is the feature's cost all the same.

What this leaves out, and the row steps include: a feature's effect on what runs around
it (caches, allocator, garbage collection) and, on Lightning, the hook dispatch of a
feature that is its own callback (the progress bar: Lightning calls each callback's every
hook). Per step = time in the timed run / its optimizer steps; per-epoch work (epoch-end
logging) is spread over the epoch's steps, as in the rows.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# feature -> (module, class, methods): each feature's per-step (and per-epoch) code
ENTRY_POINTS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "progress bar": [
        ("trainforge.logs._progress", "TrainingProgress", ("advance",)),
        ("trainforge.lightning._progress", "RunProgressBar", ("on_train_batch_end",)),
    ],
    "lr monitor": [
        ("trainforge.engine.policies._lr", "LrReporter", ("capture", "take", "epoch_end")),
    ],
    "TensorBoard, CSV": [
        ("trainforge.engine.metrics._writers", "CSVWriter", ("log_metrics", "save")),
        (
            "trainforge.engine.metrics._writers",
            "TensorBoardWriter",
            ("log_metrics", "add_histogram", "save"),
        ),
    ],
    "tracking": [
        ("trainforge.tracking._tracker", "ExperimentTracker", ("log_metric", "log_metrics")),
    ],
    "layer monitoring": [
        (
            "trainforge.engine.policies._layer_stats",
            "LayerStatistics",
            ("due", "before_step", "after_step", "take_histograms"),
        ),
    ],
    "gradient health": [
        ("trainforge.engine.policies._health", "HealthPolicy", ("check",)),
    ],
}
# feature -> (module, class, method) run as a thread's whole life: its CPU time is the cost
THREADS: dict[str, tuple[str, str, str]] = {
    "tracking": ("trainforge.tracking._tracker", "ExperimentTracker", "_write_loop"),
    "progress bar": ("rich.live", "_RefreshThread", "run"),
}


class Ledger:
    """Exclusive time and calls per feature, from wrapped entry points (one thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.thread_seconds: dict[str, float] = defaultdict(float)
        self._children: list[float] = []  # per open call: time spent in wrapped callees
        self._owner = threading.get_ident()

    def reset(self) -> None:
        """Forget what was timed so far (after the warm-up)."""
        self.seconds.clear()
        self.calls.clear()
        self.thread_seconds.clear()

    def timed(self, feature: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, its exclusive time added to ``feature`` on each call."""
        seconds, calls, children = self.seconds, self.calls, self._children
        clock, owner, ident = time.perf_counter, self._owner, threading.get_ident

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if ident() != owner:  # another thread's call: not on the step's path
                return function(*args, **kwargs)
            children.append(0.0)
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = clock() - start
                inner = children.pop()
                seconds[feature] += elapsed - inner
                calls[feature] += 1
                if children:
                    children[-1] += elapsed

        return wrapper

    def thread_timed(self, feature: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` run as a thread's body, its CPU time added to ``feature``."""
        thread_seconds = self.thread_seconds

        def body(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                thread_seconds[feature] += time.thread_time() - start

        return body

    def install(self, lightning: bool) -> None:
        """Wrap every entry point (the Lightning callback's only when ``lightning``)."""
        for feature, points in ENTRY_POINTS.items():
            for module_name, class_name, methods in points:
                if "lightning" in module_name and not lightning:
                    continue
                cls = getattr(importlib.import_module(module_name), class_name)
                for method in methods:  # the worker ends after the run: nothing is undone
                    setattr(cls, method, self.timed(feature, cls.__dict__[method]))
        for feature, (module_name, class_name, method) in THREADS.items():
            cls = getattr(importlib.import_module(module_name), class_name)
            setattr(cls, method, self.thread_timed(feature, cls.__dict__[method]))

    def wrapper_cost(self, calls: int = 200_000) -> float:
        """Seconds one wrapped call adds to what it times (on a no-op, this process)."""
        probe = Ledger()
        noop = probe.timed("probe", lambda: None)
        for _ in range(calls):
            noop()
        return probe.seconds["probe"] / calls


def attribute(
    run: Callable[[int, Any, Any, Path], None],
    lightning: bool,
    epochs: int,
    steps_per_epoch: int,
    train: Any,
    val: Any,
) -> dict[str, tuple[float, float, float]]:
    """Per feature: (us/step on the step's path, calls/step, us/step of its threads' CPU)."""
    ledger = Ledger()
    ledger.install(lightning)
    with tempfile.TemporaryDirectory(prefix="bench-attribution-") as tmp:
        run(1, train, val, Path(tmp) / "warmup")  # imports, first run's setup
        bias = ledger.wrapper_cost()
        ledger.reset()
        run(epochs, train, val, Path(tmp) / "timed")
    steps = epochs * steps_per_epoch
    return {
        feature: (
            max(ledger.seconds.get(feature, 0.0) - bias * ledger.calls.get(feature, 0), 0.0)
            / steps
            * 1e6,
            ledger.calls.get(feature, 0) / steps,
            ledger.thread_seconds.get(feature, 0.0) / steps * 1e6,
        )
        for feature in ENTRY_POINTS
    }


def print_attribution(
    driver: str, figures: dict[str, tuple[float, float, float]], target_us: float, rounds: int = 1
) -> list[tuple[str, bool]]:
    """Print one driver's attributed costs; return the target checks (step path + threads)."""
    print(
        f"-- in-run attribution, {driver} driver, defaults (time inside each feature's code"
        f"{f', medians of {rounds} runs' if rounds > 1 else ''})"
    )
    checks = []
    for feature, (step_us, calls, thread_us) in figures.items():
        total = step_us + thread_us
        print(
            f"{feature}, {driver} driver, in-run: {total:.1f} us/step "
            f"(on the step's path {step_us:.1f} us in {calls:.2f} calls, its threads "
            f"{thread_us:.1f} us; reference: {target_us:.0f} us/step target, "
            f"ratio: {total / target_us:.2f}x)"
        )
        checks.append(
            (f"{feature} on {driver}, in-run <= {target_us:.0f} us/step", total <= target_us)
        )
    sys.stdout.flush()
    return checks
