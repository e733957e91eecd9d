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
from torch import nn

from trainforge.config import TrainingConfig
from trainforge.config._schema import SHARDED_STRATEGIES
from trainforge.engine import LossStrategyRegistry, ShardPlan, TaskSpec, loader_length
from trainforge.errors import ConfigError, ConfigIssue, did_you_mean
from trainforge.train._build import data_parallel_size
from trainforge.zoo import TASK_METRICS

__all__ = [
    "ACCELERATORS",
    "check_batches",
    "check_run",
    "produced_metrics",
    "shard_plan",
    "with_data_pad_id",
]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def shard_plan(config: TrainingConfig) -> ShardPlan | None:
    """How a sharded strategy shards the model (None: the strategy does not shard)."""
    trainer = config.trainer
    if trainer.strategy not in SHARDED_STRATEGIES:
        return None
    return ShardPlan(
        names=tuple(trainer.shard_modules),
        param_dtype=trainer.param_dtype,
        reduce_dtype=trainer.reduce_dtype,
        activation_checkpointing=trainer.activation_checkpointing,
    )


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
    if trainer.strategy == "fsdp" and not on_cuda:
        issues.append(
            ConfigIssue(
                "trainer.strategy",
                "fsdp needs CUDA GPUs; on CPU use trainer.strategy=model_parallel (FSDP2, "
                "the same sharding)",
            )
        )
    if trainer.precision == "bf16-mixed" and on_cuda and not torch.cuda.is_bf16_supported():
        issues.append(
            ConfigIssue(
                "trainer.precision", "bf16-mixed is not supported by this GPU: use 16-mixed"
            )
        )
    return issues


def _global_batch_issue(config: TrainingConfig) -> ConfigIssue | None:
    """``data.global_batch_size`` against per-device batch x processes x accumulation."""
    wanted = config.data.global_batch_size
    if wanted is None:
        return None
    processes = data_parallel_size(config)
    accumulate = config.trainer.accumulate_grad_batches
    per_step = processes * accumulate
    actual = config.data.batch_size * per_step
    if actual == wanted:
        return None
    shape = (
        f"data.batch_size={config.data.batch_size} x {processes} process"
        f"{'es' if processes > 1 else ''} x trainer.accumulate_grad_batches={accumulate} "
        f"= {actual}"
    )
    if wanted % per_step == 0:
        fix = f"set data.batch_size={wanted // per_step} (per device)"
    else:
        fix = (
            f"{processes} process{'es' if processes > 1 else ''} x {accumulate} accumulated "
            f"batch{'es' if accumulate > 1 else ''} do not divide it: choose a global batch "
            f"size that is a multiple of {per_step}, or change trainer.devices, "
            "trainer.num_nodes or trainer.accumulate_grad_batches"
        )
    return ConfigIssue("data.global_batch_size", f"is {wanted} but {shape}; {fix}")


def _monitor_issue(key: str, monitor: str, produced: list[str]) -> ConfigIssue | None:
    if monitor in produced or monitor.startswith("lr/"):
        return None
    close = did_you_mean(monitor, produced)
    hint = f"did you mean {close}? " if close else ""
    return ConfigIssue(
        key,
        f"{monitor!r} is not a metric this run produces: {hint}it produces " + ", ".join(produced),
    )


def check_run(
    config: TrainingConfig,
    spec: TaskSpec,
    *,
    has_validation: bool,
    model: nn.Module | None = None,
) -> None:
    """Check what depends on the machine, the task, the model and the data; raise listing all.

    Raises:
        ConfigError: One issue per problem, each naming its key.
    """
    issues = _device_issues(config)
    if model is not None and not any(p.requires_grad for p in model.parameters()):
        count = sum(p.numel() for p in model.parameters())
        issues.append(
            ConfigIssue(
                "model.name",
                f"the model ({type(model).__name__}) has no trainable parameters "
                f"({count:,} parameters, none with requires_grad): there is nothing to train; "
                "unfreeze some (parameter.requires_grad_(True)) or pass the model to train",
            )
        )
    plan = shard_plan(config)
    if plan is not None and model is not None:
        try:
            plan.units(model)
        except ConfigError as exc:
            issues.append(ConfigIssue(exc.key or "trainer.shard_modules", exc.message))
    produced = produced_metrics(spec, has_validation=has_validation)
    monitors = [("checkpoint.monitor", config.checkpoint.monitor)]
    early = config.callbacks.early_stopping
    if early.enabled:
        monitors.append(("callbacks.early_stopping.monitor", early.monitor))
    for key, monitor in monitors:
        issue = _monitor_issue(key, monitor, produced)
        if issue is not None:
            issues.append(issue)
    batch = _global_batch_issue(config)
    if batch is not None:
        issues.append(batch)
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


def check_batches(datamodule: Any, *, has_validation: bool) -> None:
    """Refuse training or validation data that gives no batch, before the run starts.

    An empty training set would train nothing; an empty validation set would have no
    ``val/`` metric to monitor (the drivers would disagree on what it is).

    Raises:
        ConfigError: Naming the data and how to fix it.
    """
    loader = datamodule.train_dataloader()
    if loader_length(loader) == 0:
        samples = datamodule.train_samples()
        if not samples:
            raise ConfigError(
                "the training data is empty (0 samples): there is nothing to train on",
                key="data.name",
                hint="pass a dataset with samples to train(), or check data.name and data.kwargs",
            )
        size = getattr(loader, "batch_size", None)
        raise ConfigError(
            f"the training data gives no batch: {samples:,} samples in batches of {size} "
            "with drop_last, so every sample is dropped",
            key="data.batch_size",
            hint=f"use a batch size of at most {samples:,} (data.batch_size, or the "
            "DataLoader's batch_size), or drop_last=False",
        )
    if has_validation and loader_length(datamodule.val_dataloader()) == 0:
        raise ConfigError(
            "the validation data gives no batch: no val/ metric could be computed",
            key="data.val_split",
            hint="pass val_data=None (or set trainer.limit_val_batches=0) to train without "
            "validation, or give the validation set samples (a larger data.val_split)",
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
