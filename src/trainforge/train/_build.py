"""The composition root's component builders: config sections -> constructor arguments.

Every component below takes plain typed arguments; these functions read a
``TrainingConfig`` and pass them. Only ``train/`` reads the config tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from trainforge.config import TrainingConfig
from trainforge.engine import (
    DataModule,
    ForwardInputs,
    GradientAccumulator,
    GradientMonitor,
    TaskSpec,
    as_batch_dict,
    build_optimizer,
    build_scheduler,
    get_loss_strategy,
)
from trainforge.engine._batch import model_arguments
from trainforge.engine._optim import check_schedule_arguments
from trainforge.errors import ConfigError, ConfigIssue, TrainforgeError
from trainforge.hooks import HookManager
from trainforge.train._run_length import (
    batch_limit,
    batches_per_epoch,
    total_optimizer_steps,
    train_batches,
)
from trainforge.train._run_setup import RUN_DIR_VARIABLE
from trainforge.zoo import TASKS, build_datasets, build_model

__all__ = [
    "apply_sdpa",
    "autocast_dtype",
    "batch_limit",
    "batches_per_epoch",
    "build_accumulator",
    "build_datamodule",
    "build_datasets_for",
    "build_loss",
    "build_model_for",
    "build_monitor",
    "build_optimizer_for",
    "build_scheduler_for",
    "check_scheduler_for",
    "data_parallel_size",
    "devices_per_node",
    "pick_device",
    "process_rank",
    "recorded_config",
    "split_datasets",
    "task_spec_from_config",
    "total_optimizer_steps",
    "train_batches",
]

logger = logging.getLogger(__name__)

_SPEC_FIELDS = {f.name for f in fields(TaskSpec)}


def recorded_config(
    values: Mapping[str, Any], provenance: Mapping[str, Any] | None, where: str | Path
) -> TrainingConfig:
    """The training config a checkpoint recorded, validated by this version's schema.

    Raises:
        ConfigError: The recorded values are refused now, naming the checkpoint.
    """
    try:
        return TrainingConfig.from_dict(dict(values), dict(provenance or {}))
    except ConfigError as exc:  # its issues' "set by override" would point at the user
        raise ConfigError(
            f"the config recorded in {where} is refused by this version of trainforge",
            issues=[ConfigIssue(issue.key, issue.message) for issue in exc.issues],
            file=where,
            hint="load its model_state_dict into the model in Python and export or evaluate "
            "it there (create_export_bundle)",
        ) from None


def task_spec_from_config(config: TrainingConfig) -> TaskSpec:
    """The TaskSpec of ``task``: a built-in task's spec, with values the config sets on top."""
    section = config.task.model_dump()
    values = {k: v for k, v in section.items() if k in _SPEC_FIELDS and v is not None}
    if config.task.name in TASKS:
        base = TASKS.get(config.task.name).spec.to_dict()
        base.update(
            {
                k: v
                for k, v in values.items()
                if config.provenance_of(f"task.{k}").source != "default"
            }
        )
    else:
        base = values
    try:
        return TaskSpec.from_dict(base)
    except ValueError as exc:
        raise ConfigError(f"invalid task section: {exc}", key="task") from None


def pick_device(accelerator: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``gpu``/``cuda`` require CUDA."""
    if accelerator in ("auto",):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no CUDA device is available",
                key="trainer.accelerator",
                hint="use trainer.accelerator=cpu or auto",
            )
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision`` (None = full precision)."""
    if precision == "bf16-mixed":
        return torch.bfloat16
    if precision == "16-mixed":
        if device.type != "cuda":
            raise ConfigError(
                "trainer.precision=16-mixed needs a CUDA device",
                key="trainer.precision",
                hint="use bf16-mixed or 32-true on the CPU",
            )
        return torch.float16
    return None


def _with_key(key: str, value: Any, exc: TrainforgeError) -> ConfigError:
    where = exc.user_message().replace("\n", "\n  ")
    return ConfigError(
        f"{key}={value!r} cannot be built: {where}",
        key=key,
        hint=f"check {key} (a built-in name or 'package.module:Name') and its kwargs",
    )


def build_model_for(config: TrainingConfig, spec: TaskSpec) -> nn.Module:
    """``model.name`` (built-in or import path) with ``model.kwargs``."""
    try:
        return build_model(config.model.name, spec, **config.model.kwargs)
    except ConfigError:
        raise
    except TrainforgeError as exc:  # unknown name, import path that does not import
        raise _with_key("model.name", config.model.name, exc) from None


def apply_sdpa(config: TrainingConfig, model: nn.Module, data: Any) -> Any:
    """``model.sdpa``: switch attention layers to SDPA, verified on two items of ``data``.

    The sample is built only when a switch needs checking, from the first items of a
    map-style dataset (a DataLoader's own dataset and collate function), through the
    forward contract. Nothing is drawn from a stream or a sampler: an iterable dataset
    gives no sample, and switches that need one are then reported, not made.

    Returns:
        The :class:`FlashAttentionWrapper` with what was patched and skipped.
    """
    from trainforge.production import FlashAttentionWrapper

    def sample() -> Any:
        return _sdpa_sample(config, model, data)

    return FlashAttentionWrapper(model, config.model.sdpa, sample)


def _sdpa_sample(config: TrainingConfig, model: nn.Module, data: Any) -> Any:
    """Model arguments for two items of ``data`` (a tensor or keyword arguments), or None."""
    collate = getattr(data, "collate_fn", None) or default_collate
    dataset = getattr(data, "dataset", data)
    try:
        items = [dataset[i] for i in range(min(2, len(dataset)))]
    except (TypeError, NotImplementedError, KeyError, IndexError):
        return None  # an iterable dataset or a stream: not read here
    if not items:
        return None
    try:
        batch = as_batch_dict(collate(items))
        args, kwargs = model_arguments(
            model, batch, ForwardInputs(config.model.input_keys, config.data.input_key)
        )
    except (TypeError, ValueError, RuntimeError, TrainforgeError) as exc:
        logger.info("model.sdpa: no sample batch to verify on (%s)", exc)
        return None
    return args[0] if len(args) == 1 and not kwargs else kwargs


def build_datasets_for(config: TrainingConfig, spec: TaskSpec) -> tuple[Any, Any]:
    """``data.name`` (built-in or import path) split with ``data.val_split``."""
    try:
        return build_datasets(
            config.data.name,
            spec,
            val_split=config.data.val_split,
            seed=config.run.seed,
            **config.data.kwargs,
        )
    except ConfigError:
        raise
    except TrainforgeError as exc:
        raise _with_key("data.name", config.data.name, exc) from None


VALIDATION_SPLITS = ("validation", "valid", "val")


def split_datasets(train: Any, val: Any) -> tuple[Any, Any]:
    """A ``DatasetDict`` (or any mapping of splits) -> its ``train`` and validation splits.

    The validation split is ``validation``, ``valid`` or ``val`` when ``val`` is None;
    anything else is returned as it is.

    Raises:
        ConfigError: A mapping without a ``train`` split.
    """
    if not isinstance(train, Mapping):
        return train, val
    if "train" not in train:
        raise ConfigError(
            f"the training data is a mapping of splits ({', '.join(map(str, train))}) "
            "without a 'train' split",
            hint="pass dataset_dict['<split>'] as train_data (and val_data)",
        )
    if val is None:
        val = next((train[name] for name in VALIDATION_SPLITS if name in train), None)
    return train["train"], val


def build_datamodule(config: TrainingConfig, train: Any, val: Any, spec: TaskSpec) -> DataModule:
    """``data.*`` -> the data module of the driver (Lightning's subclass for ``lightning``)."""
    data = config.data
    module: type[DataModule] = DataModule
    if config.trainer.engine == "lightning":
        from trainforge.lightning import UniversalDataModule

        module = UniversalDataModule
    return module(
        train,
        val,
        batch_size=data.batch_size,
        val_batch_size=data.val_batch_size,
        task_spec=spec,
        collator=data.collator,
        num_workers=data.num_workers,
        pin_memory=data.pin_memory,
        drop_last=data.drop_last,
        shuffle=data.shuffle,
        seed=config.run.seed,
    )


def build_loss(spec: TaskSpec) -> Any:
    """The loss strategy for the task."""
    return get_loss_strategy(spec)


def build_optimizer_for(config: TrainingConfig, model: nn.Module) -> torch.optim.Optimizer:
    """``optim.*`` -> optimizer."""
    optim = config.optim
    return build_optimizer(
        optim.name,
        model,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        betas=optim.betas,
        momentum=optim.momentum,
    )


def process_rank(config: TrainingConfig | None = None) -> int:
    """This process's global rank as its launcher announced it (0 outside data parallel).

    With ``config``, the rank Lightning's cluster environment gives this process among
    ``trainer.num_nodes`` x ``trainer.devices`` (``NODE_RANK`` counts whole nodes).
    """
    if config is not None:
        if config.trainer.engine != "lightning":
            return 0
        from trainforge.lightning import cluster_position

        trainer = config.trainer
        position, _ = cluster_position(
            trainer.num_nodes, devices_per_node(config), spawned=RUN_DIR_VARIABLE in os.environ
        )
        return position.global_rank if position is not None else 0
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(name)
        if value is not None:
            return int(value)
    return 0


def devices_per_node(config: TrainingConfig) -> int:
    """Processes a Lightning fit of ``config`` runs on each node (1 for the plain driver)."""
    trainer = config.trainer
    if trainer.engine != "lightning":
        return 1
    devices = trainer.devices
    if devices == "auto":
        gpu = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.cuda.device_count() if gpu else 1
    return max(int(devices), 1)


def data_parallel_size(config: TrainingConfig) -> int:
    """Processes a Lightning fit of ``config`` runs, all nodes together (1 for plain)."""
    return devices_per_node(config) * config.trainer.num_nodes


def build_scheduler_for(config: TrainingConfig, optimizer: Any, total_steps: int | None) -> Any:
    """``optim.scheduler`` with warmup, stepped once per optimizer step.

    ``total_steps`` is None for a run of unknown length, whose schedule does not use it
    (:func:`total_optimizer_steps` refuses the others).
    """
    check_scheduler_for(config)  # the dry run's check, and its error, on every path
    optim = config.optim
    try:
        return build_scheduler(
            optim.scheduler,
            optimizer,
            total_steps=1 if total_steps is None else total_steps,
            warmup_steps=optim.warmup_steps,
            warmup_ratio=optim.warmup_ratio,
            kwargs=optim.scheduler_kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot build optim.scheduler={optim.scheduler}: {exc}", key="optim.scheduler"
        ) from None


def check_scheduler_for(config: TrainingConfig) -> None:
    """Refuse ``optim.scheduler_kwargs`` the schedule does not take (no optimizer built)."""
    try:
        check_schedule_arguments(config.optim.scheduler, config.optim.scheduler_kwargs)
    except ValueError as exc:
        raise ConfigError(
            f"cannot build optim.scheduler={config.optim.scheduler}: {exc}",
            key="optim.scheduler_kwargs",
        ) from None


def build_monitor(config: TrainingConfig, hooks: HookManager) -> GradientMonitor | None:
    """``callbacks.gradient_health`` -> GradientMonitor (None when disabled)."""
    health = config.callbacks.gradient_health
    if not health.enabled:
        return None
    return GradientMonitor(
        vanishing_threshold=health.vanishing_threshold,
        explosion_threshold=health.explosion_threshold,
        max_consecutive_failures=health.max_consecutive_failures,
        log_histogram=config.callbacks.monitoring.histogram,
        hooks=hooks,
    )


def build_accumulator(
    config: TrainingConfig,
    optimizer: Any,
    device: torch.device,
    before_step: Callable[[int], bool | None] | None = None,
) -> GradientAccumulator:
    """``trainer.accumulate_grad_batches`` / ``gradient_clip_val`` -> GradientAccumulator."""
    scaler = None
    if config.trainer.precision == "16-mixed" and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    return GradientAccumulator(
        optimizer,
        accumulation_steps=config.trainer.accumulate_grad_batches,
        max_grad_norm=config.trainer.gradient_clip_val,
        scaler=scaler,
        batch_size=config.data.batch_size,
        before_step=before_step,
    )
