"""What a default trainforge run costs per step, feature by feature, on both drivers.

The model: an MLP 784-64-64-10 (about 0.7 ms a step on one CPU thread, where per-step
overhead shows), batch 64, AdamW (lr 1e-3), no lr schedule, 500 training batches of
random data per epoch and the same 256-sample validation set after every epoch, one
thread (``torch.set_num_threads(1)``).

Rows, each trained through the public API (``Trainer(model, config).train(train, val)``
for trainforge):

- hand-written loop (the reference of the plain driver): ``DataLoader(shuffle=True)``,
  ``zero_grad``, forward, ``cross_entropy``, ``backward``, ``step``, and a ``no_grad``
  pass over the validation set per epoch;
- hand-written loop, batch indexing (context, not a target's reference): the same loop
  reading each batch with one ``index_select`` per tensor of a ``randperm`` order, as
  trainforge's loader reads a ``TensorDataset``; the plain rows print their difference
  to it, which is the loop's own overhead without the data-loading gain;
- bare Lightning (the reference of the Lightning driver): a minimal LightningModule
  (``training_step``, ``validation_step``, AdamW) and ``lightning.Trainer`` with no
  logger, no checkpointing, no progress bar and no model summary;
- trainforge defaults, then the same with one more feature off per row: the progress
  bar, the lr monitor, TensorBoard and CSV, the tracker, layer monitoring, gradient
  health (the last row has everything off; checkpoints are still written every epoch).

Per-step cost = (T(6 epochs) - T(2 epochs)) / 2,000 steps, so the start-up of a run
(run folder, tracker, first checkpoint, Lightning's setup) cancels. Each sample is a fresh
worker process that does only one variant: it warms up with a one-epoch run (imports,
allocator, first run's setup), then takes T(2) and T(6). A fresh process per sample
because one process's memory layout can make the same loop 20 % faster or slower than
another's. The variants take turns in a rotating order, ``--rounds`` times; the next
worker loads (imports, data) before the current one starts, so nothing else runs while
a loop is timed. The
figure is the median over rounds, printed with the spread ``[min-max]``. Each T is taken
on two clocks: the worker's CPU time (all its threads, e.g. the tracker's writer; on a
shared machine it leaves out the time other jobs hold the cores) and wall time.

The workers draw the progress bar as a user's terminal would show it: their stderr is a
stream to ``/dev/null`` that reports a terminal (``--no-terminal`` keeps this process's
stderr, where a file or a pipe means no bar).

In-run attribution (``step_attribution.py``, ``--skip-attribution`` to leave it out): one
more worker per driver and round (the drivers taking turns) trains the defaults with each
feature's entry points timed, exclusive of each other, and the CPU time of the threads a
feature starts, so every feature's cost comes from the same steps; each figure is the
median over ``--rounds`` such runs. It leaves out a feature's effect on
the code around it; the first code after ``backward`` (the gradient-health check) also
pays cache misses that whatever ran next would pay without it, so its figure is an
upper bound.

Start-up: ``trainforge --help``, ``trainforge runs list`` and ``trainforge train
--dry-run`` on both drivers, each a fresh process, alternating with the references
``python -c "import torch"`` and ``python -c "import lightning.pytorch"``; medians of
``--startup-repeats``.

Every figure is printed as ``name: value unit (reference: ..., ratio: ...)``, then each
feature's own per-step cost and the target checks of BENCHMARKS.md. A feature's cost is
printed twice: as the step between its rows (``row difference``) and from the in-run
attribution. Its target (<= 25 us) is checked on the in-run figure: two rows that differ by
one cheap feature move by tens of microseconds on their own, in either direction (a
feature that costs less than nothing is noise). With ``--skip-attribution`` the row
differences are checked instead.

Run: ``.venv/bin/python benchmarks/bench_step_overhead.py`` (about 5 minutes a round on
an idle 2-core machine, 10 with ``--before``; ``--skip-lightning``, ``--skip-startup``;
``--components`` for the older per-component measurements of ``step_components.py``).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

SEED = 0
BATCH_SIZE = 64
STEPS_PER_EPOCH = 500
VAL_SAMPLES = 256
SHORT, LONG = 2, 6  # epochs: per-step = (T(LONG) - T(SHORT)) / ((LONG - SHORT) * steps)
LR = 1e-3

# every trainforge row: the same model, data and optimizer as the references
BASE = [
    "task.num_classes=10",
    f"optim.lr={LR}",
    "optim.scheduler=none",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    f"data.batch_size={BATCH_SIZE}",
    f"run.seed={SEED}",
]
# cumulative: each row turns one more feature off
FEATURES = [
    ("progress bar", ["trainer.enable_progress_bar=false"]),
    ("lr monitor", ["callbacks.lr_monitor.enabled=false"]),
    ("TensorBoard, CSV", ["loggers.tensorboard.enabled=false", "loggers.csv.enabled=false"]),
    ("tracking", ["tracking.enabled=false"]),
    ("layer monitoring", ["callbacks.monitoring.enabled=false"]),
    ("gradient health", ["callbacks.gradient_health.enabled=false"]),
]
HAND, BARE = "hand-written loop", "bare Lightning"
INDEXED = "hand-written loop, batch indexing"
TARGETS = {  # (driver, row) -> ratio to the driver's reference (BENCHMARKS.md)
    ("plain", "defaults"): 1.10,
    ("plain", "everything off"): 1.03,
    ("lightning", "defaults"): 1.20,
    ("lightning", "everything off"): 1.05,
}
FEATURE_TARGET_US = 25.0
CLOCKS = ("cpu", "wall")


def rows() -> list[tuple[str, list[str]]]:
    """(row name, overrides) of the trainforge rows: defaults, then one feature off each."""
    out = [("defaults", [])]
    off: list[str] = []
    for index, (feature, overrides) in enumerate(FEATURES):
        off = off + overrides
        last = index == len(FEATURES) - 1
        out.append(("everything off" if last else f"... and {feature} off", off))
    return out


def build_model() -> Any:
    """The MLP 784-64-64-10 from ``SEED`` (identical in every variant)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def build_data() -> tuple[Any, Any]:
    """Random (inputs, labels) for ``STEPS_PER_EPOCH`` batches, and the validation set."""
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(SEED)

    def dataset(n: int) -> TensorDataset:
        return TensorDataset(
            torch.randn(n, 784, generator=generator),
            torch.randint(0, 10, (n,), generator=generator),
        )

    return dataset(BATCH_SIZE * STEPS_PER_EPOCH), dataset(VAL_SAMPLES)


def _hand_loop(
    epochs: int, train_batches: Callable[[], Any], val_batches: Callable[[], Any]
) -> None:
    """The hand-written loop of both references; only where the batches come from differs."""
    import torch
    import torch.nn.functional as F

    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    for _epoch in range(epochs):
        model.train()
        for x, y in train_batches():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_batches():
                F.cross_entropy(model(x), y)


def hand_written(epochs: int, train: Any, val: Any, _: Path) -> None:
    """The reference loop: ``epochs`` epochs over ``DataLoader``s, validation after each."""
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(SEED)
    loader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True, generator=generator)
    val_loader = DataLoader(val, batch_size=BATCH_SIZE)
    _hand_loop(epochs, lambda: loader, lambda: val_loader)


def hand_indexed(epochs: int, train: Any, val: Any, _: Path) -> None:
    """The reference loop reading each batch with one ``index_select`` per tensor (context)."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    inputs, labels = train.tensors
    val_inputs, val_labels = val.tensors

    def batches() -> Any:
        order = torch.randperm(len(inputs), generator=generator)
        for index in order.split(BATCH_SIZE):
            yield inputs.index_select(0, index), labels.index_select(0, index)

    _hand_loop(
        epochs,
        batches,
        lambda: zip(val_inputs.split(BATCH_SIZE), val_labels.split(BATCH_SIZE)),
    )


def bare_lightning(epochs: int, train: Any, val: Any, workdir: Path) -> None:
    """The minimal LightningModule, fit for ``epochs`` epochs."""
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    class Bare(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            F.cross_entropy(self.model(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.parameters(), lr=LR)

    generator = torch.Generator().manual_seed(SEED)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=workdir,
    )
    trainer.fit(
        Bare(),
        DataLoader(train, batch_size=BATCH_SIZE, shuffle=True, generator=generator),
        DataLoader(val, batch_size=BATCH_SIZE),
    )


def trainforge_run(
    engine: str, overrides: list[str], epochs: int, train: Any, val: Any, workdir: Path
) -> None:
    """A trainforge run of ``epochs`` epochs with ``overrides`` on driver ``engine``."""
    from trainforge.config import load_config
    from trainforge.train import Trainer

    config = load_config(
        cli=[
            *BASE,
            f"trainer.engine={engine}",
            f"trainer.max_epochs={epochs}",
            f"run.output_dir={workdir}",
            *overrides,
        ]
    )
    Trainer(build_model(), config, log_config=False).train(train, val)


def quiet() -> None:
    """Keep the workers' logs and warnings out of the figures."""
    import logging

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "trainforge"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)


class _Terminal(io.TextIOWrapper):
    """A stream that says it is a terminal and writes nowhere: the progress bar is drawn."""

    def isatty(self) -> bool:
        """True, as for a user's terminal."""
        return True


def as_terminal() -> None:
    """Make the worker's ``sys.stderr`` a terminal (``--no-terminal``: leave it as it is).

    A default run at a terminal draws its progress bar; the benchmark's own stderr is
    often a file or a pipe, where the bar is skipped, so the workers draw it to
    ``/dev/null`` through a stream that reports a terminal (Rich renders and writes as
    it would; what a terminal emulator does with the bytes happens in another process).
    """
    os.environ.setdefault("TERM", "xterm-256color")
    os.environ["COLUMNS"] = "120"
    sys.stderr = _Terminal(open(os.devnull, "wb"), write_through=True)  # noqa: SIM115


def serve(
    variant: Callable[[int, Any, Any, Path], None],
    uses_lightning: bool,
    conn: Connection,
    src: str | None = None,
    terminal: bool = True,
) -> None:
    """:func:`timed_worker`, with its traceback on the real stderr if it fails."""
    try:
        timed_worker(variant, uses_lightning, conn, src, terminal)
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)
        raise


def timed_worker(
    variant: Callable[[int, Any, Any, Path], None],
    uses_lightning: bool,
    conn: Connection,
    src: str | None,
    terminal: bool,
) -> None:
    """Worker: load, then on "go" warm up with one run and time ``SHORT`` and ``LONG`` epochs.

    ``src``: import trainforge from that checkout's ``src`` folder. A spawned worker
    starts with its parent's ``sys.path`` (where an editable install puts this checkout),
    so ``PYTHONPATH`` alone would not reach it: the folder goes first on ``sys.path``.
    """
    if src is not None:
        sys.path.insert(0, src)
    import torch

    torch.set_num_threads(1)
    if uses_lightning:  # importing Lightning sets its loggers' levels: silence them after
        import lightning.pytorch  # noqa: F401
    quiet()
    if terminal:
        as_terminal()
    train, val = build_data()
    conn.send("loaded")
    conn.recv()  # "go": the previous worker has finished timing
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        variant(1, train, val, Path(tmp))  # warmup: imports, allocator, first run's setup
        imported = sys.modules.get("trainforge")
        if src is not None and imported is not None:
            origin = Path(imported.__file__ or "").resolve()
            if not origin.is_relative_to(Path(src).resolve()):
                raise RuntimeError(f"the worker for {src} imported trainforge from {origin}")
        quiet()  # after the imports: importing Lightning sets its loggers' levels
        times = {}
        for epochs in (SHORT, LONG):
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            wall, cpu = time.perf_counter(), time.process_time()
            variant(epochs, train, val, workdir)
            times[epochs] = (time.perf_counter() - wall, time.process_time() - cpu)
    conn.send(times)


def _spawn(
    name: str,
    variant: Callable[[int, Any, Any, Path], None],
    before: str | None,
    terminal: bool,
) -> tuple[Any, Connection]:
    """Start the worker of one variant (``before``: on that checkout's ``src``)."""
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    uses_lightning = name == BARE or "lightning" in name
    src = str(before) if name.startswith("before ") else None  # the other checkout's code
    worker = context.Process(
        target=serve, args=(variant, uses_lightning, child, src, terminal), daemon=True
    )
    worker.start()
    child.close()  # a worker that dies ends the parent's recv() (EOFError), not hangs it
    return worker, parent


def measure(
    variants: dict[str, Callable[[int, Any, Any, Path], None]],
    rounds: int,
    before: str | None = None,
    terminal: bool = True,
) -> dict[str, dict[str, list[float]]]:
    """Per-step microseconds per clock and variant, one sample per round.

    Each sample is a fresh worker process (one process's memory layout can make the same
    loop run 20 % faster or slower than another's). The variants take turns in a rotating
    order. Nothing else runs while a worker warms up and times: the next worker is
    started and has finished its imports (seconds of CPU on a 2-core machine, which
    would slow whichever epochs they overlap) before the current one gets "go".
    """
    names = list(variants)
    steps = (LONG - SHORT) * STEPS_PER_EPOCH
    samples: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CLOCKS}
    for round_index in range(rounds):
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        pending = _spawn(order[0], variants[order[0]], before, terminal)
        pending[1].recv()  # "loaded"
        for index, name in enumerate(order):
            worker, conn = pending
            if index + 1 < len(order):
                following = order[index + 1]
                pending = _spawn(following, variants[following], before, terminal)
                pending[1].recv()  # "loaded": it waits, idle, for its own "go"
            conn.send("go")
            times = conn.recv()
            worker.join()
            for clock_index, clock in enumerate(CLOCKS):
                seconds = times[LONG][clock_index] - times[SHORT][clock_index]
                samples[clock][name].append(seconds / steps * 1e6)
        print(f"  round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return samples


def step_table(
    drivers: list[str],
    rounds: int,
    before: str | None = None,
    terminal: bool = True,
    feature_checks: bool = True,
) -> list[tuple[str, bool]]:
    """Measure and print the per-step table; return the target checks.

    With ``before`` (another checkout's ``src``), every trainforge row is also measured
    on that code, in the same rounds, and printed as a before/after table. With
    ``feature_checks``, each feature's target is checked on the step between its rows
    (the in-run attribution checks it otherwise: row differences are mostly noise).
    """
    variants: dict[str, Callable[[int, Any, Any, Path], None]] = {
        HAND: hand_written,
        INDEXED: hand_indexed,
    }
    if "lightning" in drivers:
        variants[BARE] = bare_lightning
    for driver in drivers:
        for row, overrides in rows():
            variants[f"{driver}: {row}"] = partial(trainforge_run, driver, overrides)
            if before:
                variants[f"before {driver}: {row}"] = partial(trainforge_run, driver, overrides)
    samples = measure(variants, rounds, before, terminal)
    checks = []
    for clock in CLOCKS:
        values = {name: statistics.median(runs) for name, runs in samples[clock].items()}

        def spread(name: str, clock: str = clock) -> str:
            runs = samples[clock][name]
            return f"[{min(runs):.0f}-{max(runs):.0f}]"

        print(f"-- per step, {clock} time (MLP 784-64-64-10, batch 64, AdamW, 1 thread)")
        print(f"{HAND}, {clock}: {values[HAND]:.0f} us/step {spread(HAND)}")
        print(
            f"{INDEXED} (context), {clock}: {values[INDEXED]:.0f} us/step {spread(INDEXED)} "
            f"(reference: {values[HAND]:.0f} us/step {HAND}, "
            f"ratio: {values[INDEXED] / values[HAND]:.2f}x)"
        )
        if BARE in values:
            print(
                f"{BARE}, {clock}: {values[BARE]:.0f} us/step {spread(BARE)} "
                f"(reference: {values[HAND]:.0f} us/step {HAND}, "
                f"ratio: {values[BARE] / values[HAND]:.2f}x)"
            )
        for driver in drivers:
            ref_name = HAND if driver == "plain" else BARE
            ref = values[ref_name]
            previous = None
            for row, _ in rows():
                value = values[f"{driver}: {row}"]
                print(
                    f"{driver} driver, {row}, {clock}: {value:.0f} us/step "
                    f"{spread(f'{driver}: {row}')} "
                    f"(reference: {ref:.0f} us/step {ref_name}, ratio: {value / ref:.2f}x)"
                )
                if driver == "plain":
                    indexed = values[INDEXED]
                    print(
                        f"  against {INDEXED}: {value - indexed:+.0f} us/step "
                        f"({value / indexed:.2f}x)"
                    )
                if previous is not None:
                    feature = FEATURES[len(previous) - 1][0]
                    cost = previous[-1] - value
                    print(
                        f"  {feature}, {driver} driver, {clock}: {cost:+.0f} us/step "
                        "(row difference)"
                    )
                    if clock == "cpu" and feature_checks:
                        checks.append(
                            (
                                f"{feature} on {driver} <= {FEATURE_TARGET_US:.0f} us/step",
                                cost <= FEATURE_TARGET_US,
                            )
                        )
                previous = [*(previous or []), value]
                target = TARGETS.get((driver, row))
                if target is not None and clock == "cpu":
                    checks.append((f"{driver} {row} <= {target:.2f}x", value / ref <= target))
        if before:
            print(f"-- before / after, {clock} time, us per step (ratio to the reference)")
            print("| row | plain before | plain after | lightning before | lightning after |")
            print("|---|---|---|---|---|")
            print(
                f"| {HAND} / {BARE} | {values[HAND]:.0f} | | {values.get(BARE, math.nan):.0f} | |"
            )
            for row, _ in rows():
                cells = []
                for driver in ("plain", "lightning"):
                    ref = values[HAND if driver == "plain" else BARE] if driver in drivers else 0
                    for prefix in ("before ", ""):
                        value = values.get(f"{prefix}{driver}: {row}")
                        cells.append("" if value is None else f"{value:.0f} ({value / ref:.2f}x)")
                print(f"| {row} | " + " | ".join(cells) + " |")
    return checks


def serve_attribution(engine: str, terminal: bool, conn: Connection) -> None:
    """Worker: the defaults on ``engine`` with every feature timed inside the run."""
    try:
        import torch

        torch.set_num_threads(1)
        if engine == "lightning":
            import lightning.pytorch  # noqa: F401
        quiet()
        if terminal:
            as_terminal()
        sys.path.insert(0, str(Path(__file__).parent))
        import step_attribution

        train, val = build_data()
        figures = step_attribution.attribute(
            partial(trainforge_run, engine, []),
            engine == "lightning",
            LONG,
            STEPS_PER_EPOCH,
            train,
            val,
        )
        conn.send(figures)
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)
        raise


def attribution(drivers: list[str], terminal: bool, rounds: int = 1) -> list[tuple[str, bool]]:
    """Time each feature inside default runs (``step_attribution.py``), medians per driver.

    Each of ``rounds`` rounds starts one fresh worker per driver, the drivers taking turns.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    import step_attribution

    context = mp.get_context("spawn")
    samples: dict[str, list[dict[str, tuple[float, float, float]]]] = {d: [] for d in drivers}
    for _ in range(rounds):
        for engine in drivers:
            parent, child = context.Pipe()
            worker = context.Process(
                target=serve_attribution, args=(engine, terminal, child), daemon=True
            )
            worker.start()
            child.close()  # a worker that dies ends recv() with EOFError instead of a hang
            samples[engine].append(parent.recv())
            worker.join()
    checks = []
    for engine in drivers:
        figures = {
            feature: tuple(
                statistics.median(sample[feature][i] for sample in samples[engine])
                for i in range(3)
            )
            for feature in samples[engine][0]
        }
        checks += step_attribution.print_attribution(
            engine, figures, FEATURE_TARGET_US, rounds=rounds
        )
    return checks


def _time_command(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def startup(repeats: int, before: str | None = None) -> list[tuple[str, bool]]:
    """Time the CLI's start-up against importing torch / Lightning; print and check.

    With ``before``, each trainforge command also runs on that checkout's ``src``.
    """
    python = sys.executable
    cli = [python, "-m", "trainforge.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {**os.environ, "COLUMNS": "120", "TRAINFORGE_DB": f"sqlite:///{tmp}/tracking.db"}
        # an installed package has its bytecode compiled (pip does it at install); a
        # source checkout gets it from the warm-up run below, as a user's second command does
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {
            "import torch": [python, "-c", "import torch"],
            "import lightning.pytorch": [python, "-c", "import lightning.pytorch"],
            "trainforge --help": [*cli, "--help"],
            "trainforge runs list": [*cli, "runs", "list"],
            "trainforge train --dry-run (plain)": [
                *cli,
                "train",
                "--dry-run",
                "trainer.engine=plain",
                f"run.output_dir={tmp}",
            ],
            "trainforge train --dry-run (lightning)": [
                *cli,
                "train",
                "--dry-run",
                "trainer.engine=lightning",
                f"run.output_dir={tmp}",
            ],
        }
        envs = dict.fromkeys(commands, env)
        if before:  # a store of its own: a newer one's schema revision would be refused
            earlier = {**env, "PYTHONPATH": before, "TRAINFORGE_DB": f"sqlite:///{tmp}/before.db"}
            for name in list(commands)[2:]:
                commands[f"before: {name}"] = commands[name]
                envs[f"before: {name}"] = earlier
        for store_env in {id(e): e for e in envs.values()}.values():
            # runs list needs a store: create an empty one first
            url = store_env["TRAINFORGE_DB"]
            store = f"from trainforge.tracking import ExperimentDB; ExperimentDB({url!r})"
            subprocess.run([python, "-c", store], env=store_env, check=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for name, command in commands.items():  # warm the page cache once
            _time_command(command, envs[name])
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(_time_command(command, envs[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    torch_s, lightning_s = medians["import torch"], medians["import lightning.pytorch"]
    print(f"-- start-up, median of {repeats}, wall time")
    print(f"import torch: {torch_s:.2f} s")
    print(f"import lightning.pytorch: {lightning_s:.2f} s")
    for name in list(commands)[2:]:
        reference, label = (
            (lightning_s, "import lightning.pytorch")
            if "lightning" in name
            else (torch_s, "import torch")
        )
        print(
            f"{name}: {medians[name]:.2f} s "
            f"(reference: {reference:.2f} s {label}, ratio: {medians[name] / reference:.2f}x)"
        )
    return [
        ("train --dry-run (plain) <= 2.0 s", medians["trainforge train --dry-run (plain)"] <= 2.0),
        (
            "train --dry-run (lightning) <= import lightning.pytorch + 1 s",
            medians["trainforge train --dry-run (lightning)"] <= lightning_s + 1.0,
        ),
    ]


def main() -> None:
    """Measure the per-step table and the start-up; print figures and target checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh workers per variant (samples)")
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--skip-lightning", action="store_true", help="plain driver only")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument(
        "--skip-attribution", action="store_true", help="no in-run per-feature timing"
    )
    parser.add_argument(
        "--no-terminal",
        action="store_true",
        help="workers keep this process's stderr (no progress bar unless it is a terminal)",
    )
    parser.add_argument(
        "--before", default=None, help="another checkout's src folder: measure it alongside"
    )
    parser.add_argument(
        "--components", action="store_true", help="run step_components.py's measurements instead"
    )
    args = parser.parse_args()
    if args.components:
        sys.path.insert(0, str(Path(__file__).parent))
        import step_components

        sys.argv = sys.argv[:1]
        step_components.main()
        return
    import torch

    print(
        f"step overhead: torch {torch.__version__}, batch {BATCH_SIZE}, {STEPS_PER_EPOCH} "
        f"steps/epoch, per step = (T({LONG} epochs) - T({SHORT})) / "
        f"{(LONG - SHORT) * STEPS_PER_EPOCH} steps, medians of {args.rounds} rounds",
        flush=True,
    )
    checks: list[tuple[str, bool]] = []
    drivers = ["plain"] if args.skip_lightning else ["plain", "lightning"]
    terminal = not args.no_terminal
    if not args.skip_steps:
        checks += step_table(
            drivers, args.rounds, args.before, terminal, feature_checks=args.skip_attribution
        )
    if not args.skip_attribution:
        checks += attribution(drivers, terminal, args.rounds)
    if not args.skip_startup:
        checks += startup(args.startup_repeats, args.before)
    for label, ok in checks:
        print(f"target {label}: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
