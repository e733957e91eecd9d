"""Config resolution: trainforge ``load_config`` vs plain OmegaConf merge + Pydantic.

What is measured: the wall time to turn a layered configuration of about 200 leaf keys
into a validated ``TrainingConfig``. The layers, lowest first, are the ``digits`` task
template, ``base.yaml`` (the schema sections and the ``model.kwargs`` of the network),
``train.yaml`` (which ``defaults:``-includes ``base.yaml``, adds ``data.kwargs`` and
defines ``environments:``), the ``dev`` environment overlay, CLI dotlist overrides and
programmatic ``overrides=``; a few values are ``${...}`` interpolations.

- trainforge: ``load_config(train.yaml, template=..., env="dev", cli=..., overrides=...)``,
  which also records the provenance of every leaf, collects unknown keys with
  suggestions and derives values.
- reference: the same files read with ``OmegaConf.load``, the same layers (over the same
  schema defaults) merged in the same order with ``OmegaConf.merge``, resolved with
  ``OmegaConf.to_container(resolve=True)`` and validated with
  ``TrainingConfig.model_validate``.

Both produce the same values (checked before timing). The two are run alternately in one
process after a warmup, and the medians and their ratio are printed. Targets
(../shared/BENCHMARKS.md): ratio <= 2x and trainforge under 50 ms.

Run it with ``.venv/bin/python benchmarks/bench_config.py`` (``--repeat N`` to change the
number of timed repetitions per side).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from trainforge.config import TrainingConfig, flatten, load_config

TEMPLATE = "digits"
ENV = "dev"
WARMUP = 20
RATIO_TARGET = 2.0
ABSOLUTE_TARGET_MS = 50.0


def _base_data() -> dict[str, Any]:
    """``base.yaml``: schema sections plus 48 model kwargs."""
    model_kwargs: dict[str, Any] = {f"layer_{i}_width": 64 + i for i in range(25)}
    model_kwargs.update({f"layer_{i}_dropout": round(0.01 * i, 2) for i in range(15)})
    model_kwargs.update({f"block_{i}_act": "gelu" for i in range(6)})
    model_kwargs["hidden"] = 256
    model_kwargs["proj_dim"] = "${model.kwargs.hidden}"
    return {
        "run": {"name": "bench", "seed": 7, "tags": ["bench", "config"], "notes": "base"},
        "task": {"name": "digits", "num_classes": 10, "input_dim": 64},
        "model": {"name": "mlp", "kwargs": model_kwargs},
        "data": {"batch_size": 64, "val_batch_size": "${data.batch_size}", "num_workers": 0},
        "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 0.05, "warmup_steps": 10},
        "trainer": {"max_epochs": 10, "log_every_n_steps": 5, "engine": "plain"},
        "callbacks": {
            "monitoring": {"log_frequency": 25, "histogram": False},
            "gradient_health": {"explosion_threshold": 500.0, "policy": "warn"},
            "profiler": {"trace_dir": "${run.output_dir}/traces"},
            "early_stopping": {"enabled": True, "patience": 3},
        },
        "loggers": {"csv": {"save_dir": "${run.output_dir}/csv"}},
        "checkpoint": {"monitor": "val/acc", "mode": "max", "keep_best_k": 2},
        "tracking": {"experiment_name": "bench"},
    }


def _train_data() -> dict[str, Any]:
    """``train.yaml``: includes ``base.yaml``, adds 31 data kwargs and an environment."""
    data_kwargs: dict[str, Any] = {f"feature_{i}_scale": 1.0 + i / 10 for i in range(20)}
    data_kwargs.update({f"augment_{i}": i % 2 == 0 for i in range(10)})
    data_kwargs["cache_dir"] = "${run.output_dir}/cache"
    return {
        "defaults": ["base.yaml"],
        "run": {"notes": "train"},
        "model": {"kwargs": {f"layer_{i}_width": 128 for i in range(10)}},
        "data": {"kwargs": data_kwargs, "batch_size": 32, "shuffle": True},
        "optim": {"lr": 0.002, "scheduler": "linear"},
        "trainer": {"max_epochs": 20, "gradient_clip_val": 1.0},
        "environments": {
            "dev": {
                "run": {"output_dir": "/tmp/trainforge-bench", "log_level": "DEBUG"},
                "trainer": {"max_epochs": 1, "limit_train_batches": 5, "limit_val_batches": 2},
                "data": {"kwargs": {f"feature_{i}_scale": 0.5 for i in range(10)}},
                "loggers": {"tensorboard": {"enabled": False}},
            },
            "prod": {"trainer": {"max_epochs": 100}},
        },
    }


CLI = [
    "optim.lr=3e-4",
    "--optim.weight_decay=0.01",
    "--trainer.accumulate_grad_batches",
    "2",
    "data.num_workers=2",
    "run.seed=11",
    *(f"model.kwargs.layer_{i}_dropout=0.2" for i in range(10)),
    *(f"data.kwargs.augment_{i}=false" for i in range(5)),
]

OVERRIDES: dict[str, Any] = {
    "run.name": "bench-override",
    "checkpoint.keep_last_n": 4,
    "callbacks.monitoring.log_frequency": 10,
    **{f"model.kwargs.extra_{i}": i for i in range(5)},
    **{f"data.kwargs.extra_{i}": f"value-{i}" for i in range(3)},
}


def _write_configs(root: Path) -> Path:
    """Write ``base.yaml`` and ``train.yaml`` to ``root``; return the path of the latter."""
    (root / "base.yaml").write_text(yaml.safe_dump(_base_data()), encoding="utf-8")
    train = root / "train.yaml"
    train.write_text(yaml.safe_dump(_train_data()), encoding="utf-8")
    return train


def _cli_dotlist(words: list[str]) -> list[str]:
    """The CLI words as plain ``key=value`` items (what OmegaConf's from_dotlist takes)."""
    items, i = [], 0
    while i < len(words):
        word = words[i].removeprefix("--")
        if "=" not in word:
            word, i = f"{word}={words[i + 1]}", i + 1
        items.append(word)
        i += 1
    return items


def trainforge_resolve(train: Path) -> TrainingConfig:
    """Resolve and validate with trainforge (provenance included)."""
    return load_config(train, template=TEMPLATE, env=ENV, cli=CLI, overrides=OVERRIDES, environ={})


def reference_resolve(train: Path, template: Path, defaults: dict[str, Any]) -> TrainingConfig:
    """Plain OmegaConf: load, merge the same layers in the same order, resolve, validate."""
    base = OmegaConf.load(train.parent / "base.yaml")
    top = OmegaConf.load(train)
    environments = top.pop("environments")
    top.pop("defaults")
    overrides = OmegaConf.create()
    for key, value in OVERRIDES.items():
        OmegaConf.update(overrides, key, value, merge=True)
    merged = OmegaConf.merge(
        defaults,
        OmegaConf.load(template),
        base,
        top,
        environments[ENV],
        OmegaConf.from_dotlist(_cli_dotlist(CLI)),
        overrides,
    )
    return TrainingConfig.model_validate(OmegaConf.to_container(merged, resolve=True))


def _time_ms(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn`` in milliseconds."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def main() -> None:
    """Run both sides alternately and print medians, ratio and the target check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="timed repetitions per side")
    args = parser.parse_args()

    template = Path(
        str(resources.files("trainforge.config").joinpath(f"templates/{TEMPLATE}.yaml"))
    )
    defaults = TrainingConfig().model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        train = _write_configs(Path(tmp))
        ours = trainforge_resolve(train)
        theirs = reference_resolve(train, template, defaults)
        if ours.to_dict() != theirs.to_dict():
            raise SystemExit("trainforge and the reference resolved different values")
        leaves = len(flatten(ours.to_dict()))
        set_by_layers = len(ours.overview_rows(include_defaults=False))

        def run_ours() -> object:
            return trainforge_resolve(train)

        def run_theirs() -> object:
            return reference_resolve(train, template, defaults)

        for _ in range(WARMUP):
            run_ours()
            run_theirs()
        ours_ms, theirs_ms = [], []
        for i in range(args.repeat):
            # alternate which side goes first so neither always runs on a warmer cache
            if i % 2:
                ours_ms.append(_time_ms(run_ours))
                theirs_ms.append(_time_ms(run_theirs))
            else:
                theirs_ms.append(_time_ms(run_theirs))
                ours_ms.append(_time_ms(run_ours))

    ours_med, theirs_med = statistics.median(ours_ms), statistics.median(theirs_ms)
    ratio = ours_med / theirs_med
    print(
        f"config: {leaves} leaf keys, {set_by_layers} set by layers "
        f"(template, 2 files, env overlay, cli, overrides), {args.repeat} repetitions per side"
    )
    print(
        f"config resolve+validate with provenance: {ours_med:.2f} ms "
        f"(reference: {theirs_med:.2f} ms, ratio: {ratio:.2f}x)"
    )
    ratio_ok = "PASS" if ratio <= RATIO_TARGET else "FAIL"
    abs_ok = "PASS" if ours_med < ABSOLUTE_TARGET_MS else "FAIL"
    print(f"target ratio <= {RATIO_TARGET:g}x: {ratio_ok} ({ratio:.2f}x)")
    print(f"target trainforge resolve < {ABSOLUTE_TARGET_MS:g} ms: {abs_ok} ({ours_med:.2f} ms)")


if __name__ == "__main__":
    main()
