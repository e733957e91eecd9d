"""Every config combination checked before training starts, the same way for both drivers.

The schema validates each value and the rules between values of one config; what it
cannot know is the machine (is there a GPU?), the task (which metrics will exist?) and
the data (is there a validation set?). :func:`check_run` checks those, before the run
folder, the tracked run or a single step exist, and reports every problem at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from trainforge.config import TrainingConfig
from trainforge.engine import LossStrategyRegistry, TaskSpec
from trainforge.errors import ConfigError, ConfigIssue, did_you_mean
from trainforge.zoo import TASK_METRICS

__all__ = ["ACCELERATORS", "check_run", "produced_metrics", "with_data_pad_id"]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def produced_metrics(spec: TaskSpec, *, has_validation: bool) -> list[str]:
    """Epoch-level metric names a run of ``spec`` produces (what a monitor may name)."""
    names = ["train/loss", "train/loss_epoch", "system/epoch_time_s", "system/throughput"]
    if has_validation:
        names.append("val/loss")
        names.extend(f"val/{name}" for name in TASK_METRICS.get(spec.task_type, ()))
    return names


def _device_issues(config: TrainingConfig) -> list[ConfigIssue]:
    trainer = config.trainer
    accelerator = trainer.accelerator
    if accelerator not in ACCELERATORS:
        close = did_you_mean(accelerator, ACCELERATORS)
        hint = f"did you mean {close}? " if close else ""
        return [
            ConfigIssue(
                "trainer.accelerator",
                f"unknown accelerator {accelerator!r}: {hint}choose one of "
                + ", ".join(ACCELERATORS),
            )
        ]
    issues = []
    cuda = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") and not cuda:
        issues.append(
            ConfigIssue(
                "trainer.accelerator",
                f"{accelerator} needs a CUDA device and this machine has none: use cpu or auto",
            )
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        issues.append(
            ConfigIssue("trainer.accelerator", "mps is not available here: use cpu or auto")
        )
    on_cuda = cuda and accelerator in ("auto", "gpu", "cuda")
    if trainer.precision == "16-mixed" and not on_cuda:
        issues.append(
            ConfigIssue(
                "trainer.precision",
                "16-mixed needs a CUDA device (fp16 autocast with loss scaling); this run is "
                "on the CPU: use bf16-mixed or 32-true",
            )
        )
    if trainer.precision == "bf16-mixed" and on_cuda and not torch.cuda.is_bf16_supported():
        issues.append(
            ConfigIssue(
                "trainer.precision", "bf16-mixed is not supported by this GPU: use 16-mixed"
            )
        )
    return issues


def _monitor_issue(key: str, monitor: str, produced: list[str]) -> ConfigIssue | None:
    if monitor in produced or monitor.startswith("lr/"):
        return None
    close = did_you_mean(monitor, produced)
    hint = f"did you mean {close}? " if close else ""
    return ConfigIssue(
        key,
        f"{monitor!r} is not a metric this run produces: {hint}it produces " + ", ".join(produced),
    )


def check_run(config: TrainingConfig, spec: TaskSpec, *, has_validation: bool) -> None:
    """Check what depends on the machine, the task and the data; raise listing every problem.

    Raises:
        ConfigError: One issue per problem, each naming its key.
    """
    issues = _device_issues(config)
    produced = produced_metrics(spec, has_validation=has_validation)
    monitors = [("checkpoint.monitor", config.checkpoint.monitor)]
    early = config.callbacks.early_stopping
    if early.enabled:
        monitors.append(("callbacks.early_stopping.monitor", early.monitor))
    for key, monitor in monitors:
        issue = _monitor_issue(key, monitor, produced)
        if issue is not None:
            issues.append(issue)
    loss = config.task.loss
    if loss is not None and loss not in LossStrategyRegistry:
        close = did_you_mean(loss, LossStrategyRegistry.list())
        hint = f"did you mean {close}? " if close else ""
        issues.append(
            ConfigIssue(
                "task.loss",
                f"unknown loss strategy {loss!r}: {hint}choose one of "
                + ", ".join(LossStrategyRegistry.list()),
            )
        )
    loggers = [name for name, section in config.loggers if section.enabled]
    if config.callbacks.lr_monitor.enabled and not loggers and not config.tracking.enabled:
        issues.append(
            ConfigIssue(
                "callbacks.lr_monitor.enabled",
                "the learning rate would be logged nowhere: every logger and tracking are "
                "off; enable a logger (loggers.csv.enabled=true) or tracking, or set "
                "callbacks.lr_monitor.enabled=false",
            )
        )
    if issues:
        raise ConfigError(
            f"this configuration cannot run here ({len(issues)} problem"
            f"{'s' if len(issues) > 1 else ''}); nothing was trained",
            issues=issues,
        )


def with_data_pad_id(spec: TaskSpec, train: Any, val: Any) -> TaskSpec:
    """``spec`` with the pad id of the tokenizer a given DataLoader's TextCollator pads with.

    A task without a pad id takes the tokenizer's; a task whose pad id differs from it is
    refused, since the loss would then skip other positions than the collator padded.

    Raises:
        ConfigError: ``task.pad_token_id`` disagrees with the tokenizer, or the
            tokenizer's pad id is not in the task's vocabulary.
    """
    pads = {
        pad
        for data in (train, val)
        if (pad := getattr(getattr(data, "collate_fn", None), "tokenizer_pad_token_id", None))
        is not None
    }
    if not pads:
        return spec
    if len(pads) > 1:
        raise ConfigError(
            f"the training and validation DataLoaders pad with different tokenizer pad ids "
            f"({', '.join(map(str, sorted(pads)))})",
            key="task.pad_token_id",
            hint="build both TextCollators with the same tokenizer",
        )
    (pad,) = pads
    if spec.pad_token_id is not None and spec.pad_token_id != pad:
        raise ConfigError(
            f"task.pad_token_id={spec.pad_token_id} but the DataLoader's TextCollator "
            f"pads with its tokenizer's pad id {pad}",
            key="task.pad_token_id",
            hint=f"set task.pad_token_id={pad}, or leave it unset to take the tokenizer's",
        )
    try:
        return replace(spec, pad_token_id=pad)
    except ValueError as exc:
        raise ConfigError(
            f"the tokenizer of the DataLoader's TextCollator does not fit the task: {exc}",
            key="task.vocab_size",
            hint="set task.vocab_size to len(tokenizer) (its vocabulary with the added "
            "tokens) and size the model's embeddings to it",
        ) from None
