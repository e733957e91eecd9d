"""Checkpoint save/load throughput: trainforge vs torch.save/torch.load vs raw writes.

Run: ``python benchmarks/bench_checkpoint.py [--gib 1.0] [--repeats 4] [--dir DIR]``

Every figure is measured side by side in one run, the order of the variants rotating
from one repeat to the next, and the median of ``--repeats`` runs is printed as
``name: value unit (reference: value, ratio: x)``.
Targets (../shared/BENCHMARKS.md): save with SHA256 <= 1.25x ``torch.save`` + fsync,
load with verification <= 1.5x ``torch.load(weights_only=True)``. Loads read a file
that was just written (warm page cache) on both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trainforge.checkpoint import CheckpointManager


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="state dict size in GiB")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: ./)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    n_tensors = 16
    per_tensor = int(args.gib * (1 << 30)) // (4 * n_tensors)
    state = {f"layer{i}.weight": torch.randn(per_tensor) for i in range(n_tensors)}
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    base = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=args.dir or Path.cwd()))
    metrics = {"val_loss": 1.0}
    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    try:
        for rep in range(args.repeats):
            work = base / f"rep{rep}"
            work.mkdir()
            ref = work / "ref.pt"
            managers = {
                storage: CheckpointManager(work / storage, storage=storage, keep_last_n=10)
                for storage in ("torch", "safetensors")
            }

            def raw_write(path: Path = work / "raw.bin") -> None:
                with open(path, "wb") as f:
                    for tensor in state.values():
                        f.write(memoryview(tensor.numpy()).cast("B"))
                    f.flush()
                    os.fsync(f.fileno())

            saves: list[tuple[str, Callable[[], object]]] = [
                ("raw write + fsync", raw_write),
                ("torch.save + fsync", lambda ref=ref: (torch.save(state, ref), _fsync(ref))),
            ]
            saves += [
                (
                    f"trainforge save ({storage}, sha256)",
                    lambda m=manager: m.save(model=state, epoch=0, global_step=0, metrics=metrics),
                )
                for storage, manager in managers.items()
            ]
            loads: list[tuple[str, Callable[[], object]]] = [
                (
                    "torch.load(weights_only=True)",
                    lambda ref=ref: torch.load(ref, weights_only=True),
                ),
            ]
            loads += [
                (f"trainforge load ({storage}, verify)", lambda m=manager: m.load("last"))
                for storage, manager in managers.items()
            ]
            loads.append(
                ("sha256 of the same bytes", lambda ref=ref: hashlib.sha256(ref.read_bytes()))
            )
            # rotate the order every repeat: no variant always runs first on an idle disk
            for name, fn in saves[rep % len(saves) :] + saves[: rep % len(saves)]:
                record(name, _timed(fn))
            for name, fn in loads[rep % len(loads) :] + loads[: rep % len(loads)]:
                record(name, _timed(fn))
            shutil.rmtree(work)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    median = {name: statistics.median(values) for name, values in times.items()}
    gb = nbytes / 1e9
    references = {
        "raw write + fsync": "raw write + fsync",
        "torch.save + fsync": "raw write + fsync",
        "trainforge save (torch, sha256)": "torch.save + fsync",
        "trainforge save (safetensors, sha256)": "torch.save + fsync",
        "torch.load(weights_only=True)": "torch.load(weights_only=True)",
        "trainforge load (torch, verify)": "torch.load(weights_only=True)",
        "trainforge load (safetensors, verify)": "torch.load(weights_only=True)",
        "sha256 of the same bytes": "sha256 of the same bytes",
    }
    size = f"{nbytes / (1 << 30):.2f} GiB"
    print(f"# state dict: {n_tensors} float32 tensors, {size}; median of {args.repeats}")
    for name, ref_name in references.items():
        value, ref_value = median[name], median[ref_name]
        print(
            f"{name}: {gb / value:.2f} GB/s ({value:.3f} s) "
            f"(reference: {ref_name} {gb / ref_value:.2f} GB/s, ratio: {value / ref_value:.2f}x)"
        )


if __name__ == "__main__":
    main()
