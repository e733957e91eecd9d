"""Per-step overhead of trainforge's loop drivers vs hand-written loop and bare Lightning.

What is measured: the time of one training step (forward, cross-entropy, backward,
AdamW step, and loading the batch) averaged over an epoch of 50 batches of 64 random
samples (784 features, labels 0-9, a ``TensorDataset``), for two MLPs: 784-64-64-10
(about 1 ms a step, where per-step overhead shows) and 784-512-512-10 (about 6 ms).
Four variants train the same model (same initial weights, same data, same seed):

- hand-written loop (the reference): ``DataLoader(TensorDataset, batch_size=64,
  shuffle=True)``, then ``zero_grad``, forward, ``cross_entropy``, ``backward``, ``step``;
- plain driver, monitoring off: ``TrainingLoop`` with ``get_loss_strategy("classification")``
  and ``GradientAccumulator(optimizer, batch_size=64)`` over a loader from
  ``DataLoaderFactory.create`` (tuple batches);
- plain driver, gradient health every step: the same with
  ``GradientAccumulator(..., before_step=<GradientMonitor().check_gradients>)``;
- hand-written loop + per-parameter gradient norms from one ``torch._foreach_norm``
  (what a minimal health check costs; BENCHMARKS.md measured about +11 %);
- bare Lightning (the reference of the next one): a minimal LightningModule (forward,
  ``cross_entropy`` in ``training_step``, AdamW in ``configure_optimizers``) fit by
  ``lightning.Trainer(accelerator="cpu", devices=1, logger=False,
  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
  num_sanity_val_steps=0, limit_val_batches=0, max_steps=N)`` over a plain shuffled
  ``DataLoader``;
- trainforge on Lightning: ``TaskModule(model, get_loss_strategy("classification"),
  optimizer_factory=AdamW)`` with ``TrainingMonitor(log_frequency=50)``,
  ``ExperimentTrackingCallback(ExperimentTracker(..., database=<temporary SQLite file>))``
  and the CSV logger of ``create_logger("csv", ...)`` (the Trainer's ``logger``; Lightning
  logs every 50 steps), same Trainer flags otherwise, data from ``UniversalDataModule``.

The Lightning variants run one ``Trainer.fit`` per model and worker; a callback times the
steps from inside the fit (``on_train_batch_start`` to the ``on_train_batch_start`` 50
steps later: step, hooks, logging and the next batch; the Trainer's setup is not timed)
and hands control back to the benchmark between timed stretches, so one "epoch" of a
Lightning variant is 50 consecutive steps: exactly one monitor step, one logging step and
one epoch boundary. The first 50 steps are the warmup.

Each variant runs in a worker process of its own, started once: sharing one heap, the
variants would change each other's allocator state (see ``serve``). Every variant first
trains one warmup epoch per model (not timed); then the variants take turns, one timed
epoch each per round, in a rotating order so none always runs first, while the others
wait idle. Each epoch is timed on two clocks: the worker's CPU time (the figures the
targets are checked on: on a shared machine it leaves out the time other jobs hold the
cores; it counts every thread of the worker, e.g. the tracker's writer thread; on an idle
machine it is close to the wall time) and wall time (context; noisy when the machine is
busy). The median over rounds of (epoch time / steps) is the figure; ratios are against
the hand-written loop of the same model on the same clock (trainforge on Lightning:
against bare Lightning).
``torch.set_num_threads(1)`` everywhere, so the two cores of the development machine do
not fight. Targets (../shared/BENCHMARKS.md): plain driver with monitoring off <= 1.05x,
with gradient health every step <= 1.15x; trainforge on Lightning <= 1.10x bare Lightning.

Run it with ``.venv/bin/python benchmarks/bench_step_overhead.py`` (one to two minutes on
an idle 2-core machine; ``--rounds-small N`` / ``--rounds-wide N`` change the number of
timed epochs per variant, ``--skip-lightning`` leaves out the two Lightning variants).
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing as mp
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainforge.engine import (
    DataLoaderFactory,
    GradientAccumulator,
    GradientMonitor,
    get_loss_strategy,
)
from trainforge.engine._loop import TrainingLoop

SEED = 0
BATCH_SIZE = 64
# short epochs: variants alternate every few seconds, so load from other jobs hits all alike
STEPS_PER_EPOCH = 50
IN_FEATURES = 784
NUM_CLASSES = 10
LR = 1e-3
DRIVER_TARGET = 1.05
HEALTH_TARGET = 1.15
LIGHTNING_TARGET = 1.10
MONITOR_EVERY = 50  # TrainingMonitor(log_frequency) and Lightning's log_every_n_steps

REFERENCE = "hand-written loop"
DRIVER = "plain driver, monitoring off"
HEALTH = "plain driver, gradient health every step"
FOREACH = "hand-written loop + _foreach_norm grad norms"
BARE_LIGHTNING = "bare Lightning"
ON_LIGHTNING = "trainforge on Lightning (monitor every 50 steps, tracker, CSV)"
LIGHTNING_VARIANTS = (BARE_LIGHTNING, ON_LIGHTNING)

Epoch = Callable[[], None]
# cpu: process CPU time, which excludes the time other jobs hold the cores
CLOCKS = ("cpu", "wall")


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked network: a label and its hidden widths."""

    label: str
    hidden: tuple[int, int]
    rounds: int


def build_model(hidden: tuple[int, int]) -> nn.Module:
    """An MLP 784-h1-h2-10, initialised from ``SEED`` (identical in every variant)."""
    torch.manual_seed(SEED)
    h1, h2 = hidden
    return nn.Sequential(
        nn.Linear(IN_FEATURES, h1),
        nn.ReLU(),
        nn.Linear(h1, h2),
        nn.ReLU(),
        nn.Linear(h2, NUM_CLASSES),
    )


def build_dataset() -> TensorDataset:
    """Random inputs and labels 0-9: exactly ``STEPS_PER_EPOCH`` full batches."""
    generator = torch.Generator().manual_seed(SEED)
    n = BATCH_SIZE * STEPS_PER_EPOCH
    inputs = torch.randn(n, IN_FEATURES, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    return TensorDataset(inputs, labels)


def hand_written(dataset: TensorDataset, hidden: tuple[int, int], *, norms: bool) -> Epoch:
    """The reference loop; with ``norms``, per-parameter grad norms after backward."""
    model = build_model(hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    params = list(model.parameters())
    loader = DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )

    def epoch() -> None:
        """One epoch of zero_grad / forward / loss / backward / step."""
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if norms:
                torch._foreach_norm([p.grad for p in params if p.grad is not None])
            optimizer.step()

    return epoch


def plain_driver(dataset: TensorDataset, hidden: tuple[int, int], *, monitor: bool) -> Epoch:
    """trainforge's ``TrainingLoop``, optionally checking gradient health every step."""
    model = build_model(hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    before_step = None
    if monitor:
        health = GradientMonitor()

        def before_step(step: int) -> bool:
            """The health check of every optimizer step (as the run's policies do it)."""
            return health.check_gradients(model, step=step).is_healthy

    accumulator = GradientAccumulator(optimizer, batch_size=BATCH_SIZE, before_step=before_step)
    loop = TrainingLoop(model, get_loss_strategy("classification"), accumulator)
    loader = DataLoaderFactory.create(dataset, batch_size=BATCH_SIZE, random_seed=SEED)
    epochs = iter(range(1_000_000))

    def epoch() -> None:
        """One ``TrainingLoop.run_epoch`` over the factory's loader."""
        loop.run_epoch(loader, next(epochs))

    return epoch


def time_epoch(epoch: Epoch) -> tuple[float, float]:
    """Run one epoch; return its (wall, CPU) time per step in milliseconds."""
    gc.collect()
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    epoch()
    cpu, wall = time.process_time_ns() - cpu, time.perf_counter_ns() - wall
    return wall / 1e6 / STEPS_PER_EPOCH, cpu / 1e6 / STEPS_PER_EPOCH


VARIANTS: dict[str, Callable[[TensorDataset, tuple[int, int]], Epoch]] = {
    REFERENCE: partial(hand_written, norms=False),
    DRIVER: partial(plain_driver, monitor=False),
    HEALTH: partial(plain_driver, monitor=True),
    FOREACH: partial(hand_written, norms=True),
}


def serve(variant: str, conn: Connection) -> None:
    """Worker process: build ``variant`` per model on request and time its epochs.

    Every variant runs in a process of its own: sharing one heap, the variants would
    change how often glibc hands freed gradient memory back to the OS (and then page
    faults it in again), which for the wide model moves a variant by 10-40 %.
    """
    torch.set_num_threads(1)
    dataset = build_dataset()
    conn.send("ready")
    epochs: dict[tuple[int, int], Epoch] = {}
    while (hidden := conn.recv()) is not None:
        if hidden not in epochs:
            epochs[hidden] = VARIANTS[variant](dataset, hidden)
        conn.send(time_epoch(epochs[hidden]))


def quiet_lightning() -> None:
    """Silence Lightning's setup messages and advice, so the output is the figures only."""
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    warnings.filterwarnings("ignore", message=r".*(num_workers|bottleneck|LightningModule)")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "trainforge"):
        logging.getLogger(name).setLevel(logging.ERROR)


def lightning_fit(variant: str, spec: ModelSpec, dataset: TensorDataset, conn: Connection) -> None:
    """One ``Trainer.fit`` of ``variant``, timed from inside in stretches of 50 steps.

    A callback answers the benchmark's requests: at the ``on_train_batch_start`` of every
    50th step it sends the (wall, CPU) time per step of the 50 steps before, then waits
    for the next request and restarts the clocks. ``max_steps`` covers the warmup and
    ``spec.rounds`` timed stretches, plus one step to close the last one.
    """
    import lightning.pytorch as pl

    from trainforge.lightning import (
        ExperimentTrackingCallback,
        TaskModule,
        TrainingMonitor,
        UniversalDataModule,
        create_logger,
    )
    from trainforge.tracking import ExperimentTracker

    class StepTimer(pl.Callback):
        """Times stretches of ``STEPS_PER_EPOCH`` steps on request of the benchmark."""

        def __init__(self, last_start: int) -> None:
            self.last_start = last_start  # the batch start that closes the last stretch
            self.start: tuple[int, int] | None = None

        def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
            step = trainer.global_step
            if step % STEPS_PER_EPOCH:
                return
            if self.start is not None:
                cpu, wall = time.process_time_ns(), time.perf_counter_ns()
                wall, cpu = wall - self.start[0], cpu - self.start[1]
                conn.send((wall / 1e6 / STEPS_PER_EPOCH, cpu / 1e6 / STEPS_PER_EPOCH))
                self.start = None
            if step >= self.last_start:
                return
            if step and conn.recv() is None:  # the first request started the fit
                trainer.should_stop = True
                return
            gc.collect()
            self.start = time.perf_counter_ns(), time.process_time_ns()

    class BareModule(pl.LightningModule):
        """The minimal LightningModule: forward, cross-entropy, AdamW."""

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=LR)

    steps = STEPS_PER_EPOCH * (spec.rounds + 1)  # warmup + timed stretches
    timer = StepTimer(last_start=steps)
    flags: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,  # no validation: TaskModule has a validation_step, bare not
        "max_steps": steps + 1,
        "log_every_n_steps": MONITOR_EVERY,
    }
    model = build_model(spec.hidden)
    with tempfile.TemporaryDirectory(prefix="bench-step-overhead-") as tmp:
        if variant == BARE_LIGHTNING:
            loader = DataLoader(
                dataset,
                batch_size=BATCH_SIZE,
                shuffle=True,
                generator=torch.Generator().manual_seed(SEED),
            )
            trainer = pl.Trainer(logger=False, callbacks=[timer], default_root_dir=tmp, **flags)
            trainer.fit(BareModule(model), train_dataloaders=loader)
            return
        tracker = ExperimentTracker(
            "bench-step-overhead", database=Path(tmp) / "tracking.db", handle_sigterm=False
        )
        module = TaskModule(
            model,
            get_loss_strategy("classification"),
            optimizer_factory=lambda m: torch.optim.AdamW(m.parameters(), lr=LR),
        )
        trainer = pl.Trainer(
            logger=create_logger("csv", save_dir=tmp, run_id=f"run-{tracker.run_id}"),
            callbacks=[
                timer,
                TrainingMonitor(log_frequency=MONITOR_EVERY),
                ExperimentTrackingCallback(tracker),
            ],
            default_root_dir=tmp,
            **flags,
        )
        data = UniversalDataModule(dataset, batch_size=BATCH_SIZE, seed=SEED)
        trainer.fit(module, datamodule=data)  # the callback finishes the tracked run


def serve_lightning(variant: str, spec: ModelSpec, conn: Connection) -> None:
    """Worker process of one Lightning variant and one model (one fit per worker)."""
    torch.set_num_threads(1)
    import lightning.pytorch  # noqa: F401  (imported before "ready": not in the timed rounds)

    import trainforge.lightning  # noqa: F401

    quiet_lightning()  # after the imports: importing Lightning sets its loggers' levels

    dataset = build_dataset()
    conn.send("ready")
    if conn.recv() is None:
        return
    lightning_fit(variant, spec, dataset, conn)
    while conn.recv() is not None:  # a request past the last stretch: nothing to time
        conn.send((float("nan"), float("nan")))


def measure(spec: ModelSpec, conns: dict[str, Connection]) -> dict[str, dict[str, float]]:
    """Median ms/step per clock and variant for one model, alternating variants per round."""
    names = list(conns)
    for name in names:  # warmup epoch (not timed): allocator, caches, AdamW state
        conns[name].send(spec.hidden)
        conns[name].recv()
    samples: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CLOCKS}
    for round_index in range(spec.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            # one worker runs at a time; the others wait in recv() and use no CPU
            conns[name].send(spec.hidden)
            wall, cpu = conns[name].recv()
            samples["wall"][name].append(wall)
            samples["cpu"][name].append(cpu)
    return {
        clock: {name: statistics.median(values) for name, values in per_variant.items()}
        for clock, per_variant in samples.items()
    }


def report(spec: ModelSpec, clock: str, medians: dict[str, float]) -> list[tuple[str, bool]]:
    """Print one line per figure of ``spec`` on ``clock``; return the target checks."""
    ref = medians[REFERENCE]
    label = f"{spec.label}, {clock} time"
    print(f"{REFERENCE}, {label}: {ref:.3f} ms/step")
    for name in (DRIVER, HEALTH, FOREACH):
        value = medians[name]
        print(
            f"{name}, {label}: {value:.3f} ms/step "
            f"(reference: {ref:.3f} ms/step, ratio: {value / ref:.3f}x)"
        )
    return [
        (f"{DRIVER}, {label} <= {DRIVER_TARGET:.2f}x", medians[DRIVER] / ref <= DRIVER_TARGET),
        (f"{HEALTH}, {label} <= {HEALTH_TARGET:.2f}x", medians[HEALTH] / ref <= HEALTH_TARGET),
    ]


def report_lightning(
    spec: ModelSpec, clock: str, medians: dict[str, float]
) -> list[tuple[str, bool]]:
    """Lightning lines of ``spec`` on ``clock`` (bare Lightning vs the hand-written loop as
    context); return the trainforge-on-Lightning target check."""
    ref, bare, value = medians[REFERENCE], medians[BARE_LIGHTNING], medians[ON_LIGHTNING]
    label = f"{spec.label}, {clock} time"
    print(
        f"{BARE_LIGHTNING}, {label}: {bare:.3f} ms/step "
        f"(reference: {ref:.3f} ms/step {REFERENCE}, ratio: {bare / ref:.3f}x)"
    )
    print(
        f"{ON_LIGHTNING}, {label}: {value:.3f} ms/step "
        f"(reference: {bare:.3f} ms/step {BARE_LIGHTNING}, ratio: {value / bare:.3f}x)"
    )
    return [
        (f"{ON_LIGHTNING}, {label} <= {LIGHTNING_TARGET:.2f}x", value / bare <= LIGHTNING_TARGET)
    ]


def main() -> None:
    """Measure both models and print figures, ratios and the target checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-small", type=int, default=25, help="timed epochs, MLP-64")
    parser.add_argument("--rounds-wide", type=int, default=9, help="timed epochs, MLP-512")
    parser.add_argument(
        "--skip-lightning", action="store_true", help="leave out the Lightning variants"
    )
    args = parser.parse_args()

    specs = [
        ModelSpec("MLP-64", (64, 64), args.rounds_small),
        ModelSpec("MLP-512", (512, 512), args.rounds_wide),
    ]
    lightning = "" if args.skip_lightning else ", Lightning timed inside the fit"
    print(
        f"step overhead: batch {BATCH_SIZE}, {STEPS_PER_EPOCH} steps/epoch, AdamW, "
        f"torch {torch.__version__}, 1 thread, one process per variant{lightning}; "
        f"medians of {args.rounds_small} (MLP-64) / {args.rounds_wide} (MLP-512) epochs",
        flush=True,
    )
    context = mp.get_context("spawn")
    shared: dict[str, Connection] = {}  # one worker per variant, serving both models
    per_model: dict[str, dict[str, Connection]] = {spec.label: {} for spec in specs}
    workers = []

    def start(target: Callable[..., None], *args: Any) -> Connection:
        parent, child = context.Pipe()
        worker = context.Process(target=target, args=(*args, child), daemon=True)
        worker.start()
        child.close()  # a worker that dies ends recv() with EOFError instead of a hang
        workers.append(worker)
        return parent

    for name in VARIANTS:
        shared[name] = start(serve, name)
    if not args.skip_lightning:
        for spec in specs:  # one fit per worker: a worker per Lightning variant and model
            for name in LIGHTNING_VARIANTS:
                per_model[spec.label][name] = start(serve_lightning, name, spec)
    every = [*shared.values(), *(c for conns in per_model.values() for c in conns.values())]
    for conn in every:  # imports done everywhere before anything is timed
        conn.recv()
    checks: list[tuple[str, bool]] = []
    try:
        for spec in specs:
            medians = measure(spec, {**shared, **per_model[spec.label]})
            for clock in CLOCKS:
                checks += report(spec, clock, medians[clock])
                if not args.skip_lightning:
                    checks += report_lightning(spec, clock, medians[clock])
    finally:
        for conn in every:
            conn.send(None)
        for worker in workers:
            worker.join()
    for label, ok in checks:
        print(f"target {label}: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
