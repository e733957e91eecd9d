"""Per-step overhead of the plain loop driver vs a hand-written PyTorch loop.

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
  ``GradientAccumulator(..., monitor=GradientMonitor())``;
- hand-written loop + per-parameter gradient norms from one ``torch._foreach_norm``
  (what a minimal health check costs; BENCHMARKS.md measured about +11 %).

Each variant runs in a worker process of its own, started once: sharing one heap, the
variants would change each other's allocator state (see ``serve``). Every variant first
trains one warmup epoch per model (not timed); then the variants take turns, one timed
epoch each per round, in a rotating order so none always runs first, while the others
wait idle. Each epoch is timed on two clocks: the worker's CPU time (the figures the
targets are checked on: on a shared machine it leaves out the time other jobs hold the
cores; everything runs on the worker's one thread, so on an idle machine it equals the
wall time) and wall time (context; noisy when the machine is busy). The median over
rounds of (epoch time / steps) is the figure; ratios are against the hand-written loop of
the same model on the same clock. ``torch.set_num_threads(1)`` everywhere, so the two
cores of the development machine do not fight. Targets (../shared/BENCHMARKS.md): plain
driver with monitoring off <= 1.05x, with gradient health every step <= 1.15x.

Run it with ``.venv/bin/python benchmarks/bench_step_overhead.py`` (about a minute on an
idle 2-core machine; ``--rounds-small N`` / ``--rounds-wide N`` change the number of timed
epochs per variant).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

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

REFERENCE = "hand-written loop"
DRIVER = "plain driver, monitoring off"
HEALTH = "plain driver, gradient health every step"
FOREACH = "hand-written loop + _foreach_norm grad norms"

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
    accumulator = GradientAccumulator(
        optimizer, batch_size=BATCH_SIZE, monitor=GradientMonitor() if monitor else None
    )
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
    epochs: dict[tuple[int, int], Epoch] = {}
    while (hidden := conn.recv()) is not None:
        if hidden not in epochs:
            epochs[hidden] = VARIANTS[variant](dataset, hidden)
        conn.send(time_epoch(epochs[hidden]))


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


def main() -> None:
    """Measure both models and print figures, ratios and the target checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-small", type=int, default=25, help="timed epochs, MLP-64")
    parser.add_argument("--rounds-wide", type=int, default=9, help="timed epochs, MLP-512")
    args = parser.parse_args()

    specs = [
        ModelSpec("MLP-64", (64, 64), args.rounds_small),
        ModelSpec("MLP-512", (512, 512), args.rounds_wide),
    ]
    print(
        f"step overhead: batch {BATCH_SIZE}, {STEPS_PER_EPOCH} steps/epoch, AdamW, "
        f"torch {torch.__version__}, 1 thread, one process per variant; "
        f"medians of {args.rounds_small} (MLP-64) / {args.rounds_wide} (MLP-512) epochs"
    )
    context = mp.get_context("spawn")
    conns: dict[str, Connection] = {}
    workers = []
    for name in VARIANTS:
        parent, child = context.Pipe()
        worker = context.Process(target=serve, args=(name, child), daemon=True)
        worker.start()
        conns[name] = parent
        workers.append(worker)
    checks: list[tuple[str, bool]] = []
    try:
        for spec in specs:
            medians = measure(spec, conns)
            for clock in CLOCKS:
                checks += report(spec, clock, medians[clock])
    finally:
        for conn in conns.values():
            conn.send(None)
        for worker in workers:
            worker.join()
    for label, ok in checks:
        print(f"target {label}: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
