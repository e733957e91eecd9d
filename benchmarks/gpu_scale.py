"""Sharded training on CUDA: ``model_parallel`` (FSDP2) and ``fsdp`` against DDP, same run.

Trains the built-in ``tiny_lm`` task (a character-level GPT) through the real CLI on every
visible GPU: sharded with each strategy (bf16 compute through FSDP mixed precision,
activation checkpointing of its blocks, sharded checkpoints), and once with DDP as the
reference; then verifies and consolidates each sharded run's last checkpoint and resumes
it from its mid-run checkpoint. Under 5 minutes on one modern GPU (a single GPU is a
world of one process). Prints one line per figure::

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
        "--precision", default="bf16-mixed", help="trainer.precision (32-true, bf16-mixed)."
    )
    parser.add_argument(
        "--param-dtype",
        default="bfloat16",
        help="trainer.param_dtype of the sharded runs (FSDP mixed precision; none: unset).",
    )
    parser.add_argument(
        "--strategies", default="model_parallel,fsdp", help="Sharded strategies to run."
    )
    parser.add_argument(
        "--accelerator", default="gpu", help="gpu; cpu only to check the script itself."
    )
    parser.add_argument("--workdir", default=None, help="Keep the runs here (default: temp).")
    return parser.parse_args()


def _train(
    workdir: Path, strategy: str, devices: int, args: argparse.Namespace, *extra: str
) -> Path:
    """One ``trainforge train`` run; returns its run folder."""
    before = set((workdir / "outputs").glob("run-*"))
    if strategy != "ddp":
        extra = ("trainer.activation_checkpointing=true", *extra)
        if args.param_dtype != "none":
            extra = (f"trainer.param_dtype={args.param_dtype}", *extra)
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
        "checkpoint.keep_last_n=100",
        # Lightning's FSDP cannot clip by norm: no run clips, so all do the same work
        "trainer.gradient_clip_val=null",
        *extra,
    ]
    env = {**os.environ, "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}"}
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{strategy} {' '.join(extra)} run failed (exit {done.returncode})")
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
    done = subprocess.run(
        [sys.executable, "-m", "trainforge.cli", *command], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"trainforge {' '.join(command)} failed (exit {done.returncode})")
    return time.perf_counter() - start


def _sharded(
    workdir: Path,
    strategy: str,
    devices: int,
    args: argparse.Namespace,
    ddp: float,
    ddp_s: float,
) -> None:
    """Train with ``strategy``, verify, consolidate, resume; print its figures."""
    start = time.perf_counter()
    sharded = _train(workdir, strategy, devices, args)
    sharded_s = time.perf_counter() - start
    rate = _throughput(sharded)
    print(
        f"{strategy}_throughput: {rate:.1f} samples/s "
        f"(reference: ddp {ddp:.1f} samples/s, ratio: {rate / ddp:.2f})"
    )
    print(
        f"{strategy}_run: {sharded_s:.1f} s "
        f"(reference: ddp {ddp_s:.1f} s, ratio: {sharded_s / ddp_s:.2f})"
    )
    checkpoints = sharded / "checkpoints"
    size = sum(p.stat().st_size for p in checkpoints.glob("ckpt-*/*"))
    verify_s = _timed("ckpt", "verify", str(checkpoints))
    out = workdir / f"{strategy}-one"
    consolidate_s = _timed("ckpt", "consolidate", str(checkpoints / "last"), "--output", str(out))
    print(f"{strategy}_checkpoints_verify: {verify_s:.2f} s for {size / 1e6:.1f} MB (reference: -)")
    print(f"{strategy}_checkpoint_consolidate: {consolidate_s:.2f} s (reference: -)")
    import torch

    (single,) = out.glob("ckpt-*/state.pt")
    whole = torch.load(single, weights_only=True)["model_state_dict"]
    (middle,) = [
        p for p in checkpoints.glob("ckpt-*") if p.name.endswith(f"step{args.steps // 2:06d}")
    ]
    start = time.perf_counter()
    resumed = _train(workdir, strategy, devices, args, "--resume", str(middle))
    resume_s = time.perf_counter() - start
    again = torch.load(_consolidated(resumed, workdir / f"{strategy}-resumed"), weights_only=True)[
        "model_state_dict"
    ]
    gap = max(float((whole[k].float() - again[k].float()).abs().max()) for k in whole)
    print(
        f"{strategy}_resume_max_weight_difference: {gap:.3g} after {resume_s:.1f} s "
        f"(reference: 0 bit-exact; {len(whole)} tensors)"
    )


def _consolidated(run: Path, out: Path) -> Path:
    """The run's last checkpoint as one ``state.pt``."""
    _timed("ckpt", "consolidate", str(run / "checkpoints" / "last"), "--output", str(out))
    (single,) = out.glob("ckpt-*/state.pt")
    return single


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
        replicated = _train(workdir, "ddp", devices, args)
        replicated_s = time.perf_counter() - start
        ddp = _throughput(replicated)
        for strategy in args.strategies.split(","):
            _sharded(workdir, strategy, devices, args, ddp, replicated_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
