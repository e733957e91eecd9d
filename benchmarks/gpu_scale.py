"""Sharded training on CUDA: ``trainer.strategy=model_parallel`` against DDP, same run.

Trains the built-in ``tiny_lm`` task (a character-level GPT) through the real CLI twice
on every visible GPU, once sharded (FSDP2, sharded checkpoints) and once with DDP, then
verifies and consolidates the sharded run's last checkpoint. Under 2 minutes on one
modern GPU. Prints one line per figure::

    model_parallel_throughput: 9123.4 samples/s (reference: ddp 9500.1 samples/s, ratio: 0.96)

Run: ``python benchmarks/gpu_scale.py`` (``--help`` for options; without a GPU it says
so and exits 2).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="model_parallel (FSDP2) against DDP on CUDA, through trainforge train; "
        "then verify and consolidate the sharded checkpoint."
    )
    parser.add_argument("--devices", type=int, default=0, help="GPUs to use (0: all).")
    parser.add_argument("--steps", type=int, default=60, help="Optimizer steps per run.")
    parser.add_argument(
        "--precision", default="32-true", help="trainer.precision (32-true, bf16-mixed)."
    )
    parser.add_argument(
        "--accelerator", default="gpu", help="gpu; cpu only to check the script itself."
    )
    parser.add_argument("--workdir", default=None, help="Keep the runs here (default: temp).")
    return parser.parse_args()


def _train(workdir: Path, strategy: str, devices: int, args: argparse.Namespace) -> Path:
    """One ``trainforge train`` run; returns its run folder."""
    before = set((workdir / "outputs").glob("run-*"))
    command = [
        sys.executable,
        "-m",
        "trainforge.cli",
        "train",
        "--template",
        "tiny_lm",
        f"trainer.strategy={strategy}",
        f"trainer.devices={devices}",
        f"trainer.accelerator={args.accelerator}",
        f"trainer.precision={args.precision}",
        f"trainer.max_steps={args.steps}",
        "trainer.max_epochs=100",
        f"trainer.checkpoint_every_n_steps={max(args.steps // 2, 1)}",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=4",
        "loggers.csv.enabled=true",
    ]
    env = {**os.environ, "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}"}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{strategy} run failed (exit {done.returncode})")
    (run,) = set((workdir / "outputs").glob("run-*")) - before
    return run


def _throughput(run: Path) -> float:
    """Median ``system/throughput`` over the run's epochs (samples per second)."""
    with open(run / "csv" / "metrics.csv", encoding="utf-8") as f:
        values = sorted(
            float(row["system/throughput"])
            for row in csv.DictReader(f)
            if row.get("system/throughput")
        )
    if not values:
        raise SystemExit(f"{run} logged no system/throughput")
    return values[len(values) // 2]


def _timed(*command: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "trainforge.cli", *command], check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> int:
    args = _parse()
    import torch

    on_cpu = args.accelerator == "cpu"
    if not on_cpu and not torch.cuda.is_available():
        print("gpu_scale needs a CUDA device; this machine has none", file=sys.stderr)
        return 2
    devices = args.devices or (1 if on_cpu else torch.cuda.device_count())
    device = "cpu" if on_cpu else torch.cuda.get_device_name(0)
    print(f"# {devices} x {device}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(args.workdir or temp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        sharded = _train(workdir, "model_parallel", devices, args)
        sharded_s = time.perf_counter() - start
        start = time.perf_counter()
        replicated = _train(workdir, "ddp", devices, args)
        replicated_s = time.perf_counter() - start
        mp, ddp = _throughput(sharded), _throughput(replicated)
        print(
            f"model_parallel_throughput: {mp:.1f} samples/s "
            f"(reference: ddp {ddp:.1f} samples/s, ratio: {mp / ddp:.2f})"
        )
        print(
            f"model_parallel_run: {sharded_s:.1f} s "
            f"(reference: ddp {replicated_s:.1f} s, ratio: {sharded_s / replicated_s:.2f})"
        )
        last = sharded / "checkpoints" / "last"
        size = sum(p.stat().st_size for p in (sharded / "checkpoints").glob("ckpt-*/*"))
        verify_s = _timed("ckpt", "verify", str(sharded / "checkpoints"))
        consolidate_s = _timed("ckpt", "consolidate", str(last), "--output", str(workdir / "one"))
        print(
            f"sharded_checkpoints_verify: {verify_s:.2f} s for {size / 1e6:.1f} MB (reference: -)"
        )
        print(f"sharded_checkpoint_consolidate: {consolidate_s:.2f} s (reference: -)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
