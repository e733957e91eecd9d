"""The composition root: the one place where config sections meet component constructors.

Every component below takes plain typed arguments; this module reads a
``TrainingConfig`` and passes them. Nothing else in trainforge reads the config tree.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge.checkpoint import CheckpointManager, resolve_checkpoint
from trainforge.config import TrainingConfig
from trainforge.engine import GradientAccumulator, GradientMonitor, TaskSpec, get_loss_strategy
from trainforge.engine._optim import build_optimizer, build_scheduler
from trainforge.errors import CheckpointNotFoundError, ConfigError, TrainforgeError
from trainforge.hooks import HookManager
from trainforge.lightning import UniversalDataModule, create_logger
from trainforge.tracking import ExperimentTracker, resolve_database_url
from trainforge.zoo import TASKS, build_datasets, build_model

__all__ = [
    "autocast_dtype",
    "batches_per_epoch",
    "build_accumulator",
    "build_checkpoint_manager",
    "build_datamodule",
    "build_loggers",
    "build_loss",
    "build_model_for",
    "build_optimizer_for",
    "build_scheduler_for",
    "build_tracker",
    "data_parallel_size",
    "failed_on_error",
    "find_resume_checkpoint",
    "open_resume",
    "pick_device",
    "process_rank",
    "start_run",
    "task_spec_from_config",
    "warm_start",
]

logger = logging.getLogger(__name__)

_SPEC_FIELDS = {f.name for f in fields(TaskSpec)}


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
        return TaskSpec.from_dict(base)
    try:
        return TaskSpec.from_dict(values)
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


def build_datamodule(config: TrainingConfig, train: Any, val: Any, spec: TaskSpec) -> Any:
    """``data.*`` -> the data module both drivers load from."""
    data = config.data
    return UniversalDataModule(
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


def batch_limit(limit: float | int | None, batches: int) -> int | None:
    """``limit_*_batches``: an int is a count, a float a fraction of ``batches``."""
    if limit is None:
        return None
    if isinstance(limit, float) and limit <= 1.0:
        return max(1, int(batches * limit)) if limit > 0 else 0
    return int(limit)


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


# Set by rank zero of a data-parallel fit for the processes Lightning launches after it:
# the run folder they join and the exact checkpoint a resumed run continues from.
RUN_DIR_VARIABLE = "TRAINFORGE_DDP_RUN_DIR"
RESUME_VARIABLE = "TRAINFORGE_DDP_RESUME"


def process_rank() -> int:
    """This process's global rank as the launcher announced it (0 outside data parallel)."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(name)
        if value is not None:
            return int(value)
    return 0


def data_parallel_size(config: TrainingConfig) -> int:
    """Processes a Lightning fit of ``config`` runs (1 for the plain driver)."""
    trainer = config.trainer
    if trainer.engine != "lightning":
        return 1
    devices = trainer.devices
    if devices == "auto":
        gpu = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.cuda.device_count() if gpu else 1
    return max(int(devices), 1)


def batches_per_epoch(config: TrainingConfig, samples: int, processes: int = 1) -> int:
    """Training batches each process runs per epoch (before ``limit_train_batches``)."""
    per_process = math.ceil(samples / processes)
    size = config.data.batch_size
    return per_process // size if config.data.drop_last else math.ceil(per_process / size)


def total_optimizer_steps(config: TrainingConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run (for the schedule)."""
    trainer = config.trainer
    limit = batch_limit(trainer.limit_train_batches, batches_per_epoch)
    if limit is not None:
        batches_per_epoch = min(batches_per_epoch, limit)
    per_epoch = math.ceil(batches_per_epoch / trainer.accumulate_grad_batches)
    if trainer.max_steps is not None:
        if trainer.max_epochs is not None:
            return min(trainer.max_steps, per_epoch * trainer.max_epochs)
        return trainer.max_steps
    assert trainer.max_epochs is not None  # the schema requires one of the two
    return per_epoch * trainer.max_epochs


def build_scheduler_for(config: TrainingConfig, optimizer: Any, total_steps: int) -> Any:
    """``optim.scheduler`` with warmup, stepped once per optimizer step."""
    optim = config.optim
    try:
        return build_scheduler(
            optim.scheduler,
            optimizer,
            total_steps=total_steps,
            warmup_steps=optim.warmup_steps,
            warmup_ratio=optim.warmup_ratio,
            kwargs=optim.scheduler_kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot build optim.scheduler={optim.scheduler}: {exc}", key="optim.scheduler"
        ) from None


def build_monitor(config: TrainingConfig, hooks: HookManager) -> GradientMonitor | None:
    """``callbacks.gradient_health`` -> GradientMonitor (None when disabled)."""
    health = config.callbacks.gradient_health
    if not health.enabled:
        return None
    return GradientMonitor(
        vanishing_threshold=health.vanishing_threshold,
        explosion_threshold=health.explosion_threshold,
        max_consecutive_failures=(
            health.max_consecutive_failures if health.policy == "stop" else 2**31 - 1
        ),
        log_histogram=config.callbacks.monitoring.histogram,
        hooks=hooks,
    )


def build_accumulator(
    config: TrainingConfig,
    optimizer: Any,
    monitor: GradientMonitor | None,
    device: torch.device,
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
        monitor=monitor,
    )


def build_tracker(config: TrainingConfig) -> ExperimentTracker | None:
    """``tracking.*`` -> ExperimentTracker (None when disabled)."""
    tracking = config.tracking
    if not tracking.enabled:
        return None
    url = resolve_database_url(tracking.database, config.run.output_dir)
    tracker = ExperimentTracker(
        tracking.experiment_name,
        tracking.project_name,
        tags=config.run.tags,
        config=config,
        database=url,
        run_name=config.run.name,
        notes=config.run.notes,
    )
    tracker.log_params(config.to_dict())
    return tracker


def run_folder_name(tracker: ExperimentTracker | None, output_dir: str | Path) -> str:
    """``run-<id>`` for a tracked run, else ``run-<timestamp>-<pid>``; never an existing one.

    Two tracking stores can hand out the same id for one output directory: the second
    run then gets the timestamp appended instead of writing into the first run's folder.
    """
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    base = f"run-{int(tracker.run_id):06d}" if tracker is not None else f"run-{stamp}"
    candidates = [base] if tracker is None else [base, f"{base}-{stamp}"]
    candidates += [f"{candidates[-1]}-{n}" for n in range(2, 1000)]
    for name in candidates:
        if not (Path(output_dir) / name).exists():
            return name
    raise FileExistsError(f"no free run folder name under {output_dir} for {base}")


def build_loggers(config: TrainingConfig, run_id: str) -> list[Any]:
    """Every enabled logger of ``loggers.*``, writing under ``<save_dir>/<run_id>/``.

    Each logger also gets the resolved config as hyperparameters (MLflow params, W&B
    config, ``hparams.yaml``), with any password in a store URL hidden.
    """
    from trainforge.tracking._url import display_url

    built = []
    for kind, section in config.loggers:
        if not section.enabled:
            continue
        options = section.model_dump(exclude={"enabled", "save_dir"})
        built.append(
            create_logger(
                kind, save_dir=section.save_dir, run_id=run_id, run_name=config.run.name, **options
            )
        )
    if built:
        params = config.to_dict()
        for holder, field in (
            (params["tracking"], "database"),
            (params["loggers"]["mlflow"], "tracking_uri"),
        ):
            if holder.get(field):
                holder[field] = display_url(holder[field])
        for item in built:
            item.log_hyperparams(params)
    return built


def build_checkpoint_manager(
    config: TrainingConfig, run_dir: Path, hooks: HookManager, tracker: Any
) -> CheckpointManager:
    """``checkpoint.*`` -> CheckpointManager in ``<run>/checkpoints`` (or ``dirpath``)."""
    ckpt = config.checkpoint
    directory = Path(ckpt.dirpath) if ckpt.dirpath else run_dir / "checkpoints"
    policies = None
    if ckpt.keep_every_n_epochs:
        from trainforge.checkpoint import (
            AnyOf,
            KeepBestK,
            KeepEveryNEpochs,
            KeepLastN,
            KeepProtected,
        )

        policies = [
            AnyOf(
                [
                    KeepBestK(ckpt.keep_best_k),
                    KeepLastN(ckpt.keep_last_n),
                    KeepEveryNEpochs(ckpt.keep_every_n_epochs),
                    KeepProtected(),
                ]
            )
        ]
    return CheckpointManager(
        directory,
        keep_best_k=ckpt.keep_best_k,
        keep_last_n=ckpt.keep_last_n,
        monitor=ckpt.monitor,
        mode=ckpt.mode,
        save_interval_epochs=ckpt.save_interval_epochs,
        storage=ckpt.storage,
        compression=ckpt.compression,
        verify_on_load=ckpt.verify_on_load,
        mirror=ckpt.mirror,
        hooks=hooks,
        tracker=tracker,
        policies=policies,
    )


def open_resume(
    config: TrainingConfig,
    target: str | Path,
    hooks: HookManager,
    *,
    allow_changes: Sequence[str],
    model: nn.Module,
) -> tuple[CheckpointManager, Any]:
    """Validate and load the checkpoint ``--resume`` names, for either driver.

    Allowed breaking changes are tagged ``resume`` in the config's provenance. Returns the
    (read-only) manager of the checkpoint's directory and its ``ResumeResult``.
    """
    directory, name = find_resume_checkpoint(target, config.run.output_dir)
    ckpt = config.checkpoint
    # read-only use: retention never runs because nothing is saved through it
    manager = CheckpointManager(directory, monitor=ckpt.monitor, mode=ckpt.mode, hooks=hooks)
    result = manager.resume(
        name, config, mode=ckpt.resume_mode, allow_changes=allow_changes, model=model
    )
    for change in result.allowed_changes:
        config.tag(change.key, "resume", f"allowed change from {change.old!r}")
    return manager, result


def warm_start(model: nn.Module, checkpoint: dict[str, Any], mismatches: Sequence[str]) -> None:
    """Resume of a changed model (``resume_mode=warn``): load the tensors that still fit.

    The optimizer, the schedule and the loop position belong to the old shapes, so the
    run starts them fresh, as training from these weights.
    """
    current = model.state_dict()
    fitting = {
        k: v
        for k, v in checkpoint["model_state_dict"].items()
        if k in current and tuple(current[k].shape) == tuple(v.shape)
    }
    model.load_state_dict(fitting, strict=False)
    logger.warning(
        "resuming a different model: loaded %d of %d tensors; optimizer and schedule "
        "start fresh; mismatches: %s",
        len(fitting),
        len(current),
        "; ".join(mismatches),
    )


@contextlib.contextmanager
def failed_on_error(tracker: ExperimentTracker | None) -> Iterator[None]:
    """Mark the tracked run failed (killed on Ctrl-C) if the block raises, then re-raise.

    Covers what runs between :func:`start_run` and the loop (loggers, callbacks): a run
    that never trained must not end ``completed`` when the process exits normally.
    """
    try:
        yield
    except BaseException as exc:
        if tracker is not None:
            tracker.finish("killed" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise


def start_run(
    config: TrainingConfig, command: Sequence[str], *, resumed_from: str | Path | None = None
) -> tuple[ExperimentTracker | None, str, Path]:
    """Open the tracked run and its folder (config with provenance, command line)."""
    tracker = build_tracker(config)
    run_id = run_folder_name(tracker, config.run.output_dir)
    run_dir = Path(config.run.output_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    (run_dir / "command.txt").write_text(shlex.join(command) + "\n", encoding="utf-8")
    if resumed_from is not None and tracker is not None:
        tracker.set_tags({"resumed_from": str(resumed_from)})
    return tracker, run_id, run_dir


def find_resume_checkpoint(target: str | Path, output_dir: str | Path) -> tuple[Path, str]:
    """Where ``--resume`` points: (checkpoint directory of a manager, target inside it).

    ``last`` / ``best`` mean: of the most recent run under ``output_dir`` that has one.
    A path is resolved by :func:`~trainforge.checkpoint.resolve_checkpoint` (a directory
    of checkpoints, a pointer file, one checkpoint, its manifest or payload file).
    """
    target = str(target)
    if target in ("last", "best"):
        candidates = sorted(
            Path(output_dir).glob(f"*/checkpoints/{target}"),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        if not candidates:
            raise CheckpointNotFoundError(
                f"no '{target}' checkpoint under {output_dir}/*/checkpoints",
                path=output_dir,
                hint="train once first, or pass --resume PATH to a checkpoint directory",
            )
        return candidates[0].parent, target
    return resolve_checkpoint(target)
