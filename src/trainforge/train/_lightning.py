"""The Lightning driver's composition: config -> TaskModule, callbacks, loggers, fit.

The parts are the same objects the plain driver uses (loss strategy, optimizer and
schedule factories, GradientMonitor, CheckpointManager, ExperimentTracker, loggers,
UniversalDataModule); only the loop differs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from trainforge.engine import TaskSpec
from trainforge.engine.metrics import MetricsEngine
from trainforge.errors import TrainforgeError
from trainforge.hooks import HookEvent, call_hook_objects
from trainforge.lightning import (
    HeatmapModule,
    TaskModule,
    build_callbacks,
    build_profiler,
    to_lightning_checkpoint,
    top_operators_table,
)
from trainforge.lightning._driver import fit
from trainforge.logs import log_config_overview
from trainforge.train import _build as build
from trainforge.zoo import task_metrics

if TYPE_CHECKING:
    from trainforge.train._trainer import Trainer, TrainingResults

__all__ = ["train_with_lightning"]

logger = logging.getLogger(__name__)


def _trainer_options(config: Any) -> dict[str, Any]:
    trainer = config.trainer
    automatic = trainer.optimization == "automatic"
    options: dict[str, Any] = {
        "max_epochs": trainer.max_epochs if trainer.max_epochs is not None else -1,
        "max_steps": trainer.max_steps if trainer.max_steps is not None else -1,
        "accelerator": trainer.accelerator,
        "devices": trainer.devices,
        "strategy": trainer.strategy,
        "precision": trainer.precision,
        "accumulate_grad_batches": trainer.accumulate_grad_batches if automatic else 1,
        "gradient_clip_val": trainer.gradient_clip_val if automatic else None,
        "val_check_interval": trainer.val_check_interval,
        "log_every_n_steps": trainer.log_every_n_steps,
        "enable_progress_bar": trainer.enable_progress_bar,
        "deterministic": config.run.deterministic,
        # UniversalDataModule gives each data-parallel process its share itself
        "use_distributed_sampler": False,
    }
    if trainer.limit_train_batches is not None:
        options["limit_train_batches"] = trainer.limit_train_batches
    if trainer.limit_val_batches is not None:
        options["limit_val_batches"] = trainer.limit_val_batches
    return options


def train_with_lightning(
    facade: Trainer,
    spec: TaskSpec,
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    resume_from: str | Path | None,
) -> TrainingResults:
    """Train ``model`` with ``lightning.Trainer``; the same results as the plain driver."""
    from trainforge.train._trainer import TrainingResults, _best_or_none

    config = facade.config
    hooks = facade.hook_manager
    trainer = config.trainer
    manual = trainer.optimization == "manual"
    datamodule = build.build_datamodule(config, train_data, val_data, spec)
    datamodule.train_dataloader()  # bad data settings fail here, before any run starts
    processes = build.data_parallel_size(config)
    batches = build.batches_per_epoch(config, len(train_data), processes)
    total_steps = build.total_optimizer_steps(config, batches)
    rank = build.process_rank()
    module_cls = HeatmapModule if spec.task_type == "heatmap" else TaskModule
    module = module_cls(
        model,
        build.build_loss(spec),
        optimizer_factory=lambda m: build.build_optimizer_for(config, m),
        scheduler_factory=lambda opt: build.build_scheduler_for(config, opt, total_steps),
        metric_fn=lambda outputs, batch: task_metrics(spec, outputs, batch),
        optimization=trainer.optimization,
        micro_batch_size=trainer.micro_batch_size if manual else None,
        accumulation_steps=trainer.accumulate_grad_batches if manual else 1,
        max_grad_norm=trainer.gradient_clip_val if manual else None,
        compile=trainer.compile,
    )

    resume_ckpt = resumed_from = None
    if resume_from is not None:
        if rank > 0:  # the checkpoint rank zero resolved, not this process's own "last"
            resume_from = _announced(build.RESUME_VARIABLE, rank)
        source, result = build.open_resume(
            config,
            resume_from,
            hooks,
            allow_changes=facade.allow_config_changes,
            model=model,
        )
        resume_ckpt = result.checkpoint
        resumed_from = resume_ckpt["path"]
        if result.model_mismatches:  # warn mode: a warm start, not a continuation
            build.warm_start(model, resume_ckpt, result.model_mismatches)
            resume_ckpt = None
        elif rank == 0:
            logger.info(
                "resuming from %s (epoch %s, step %s)",
                resume_ckpt["path"],
                resume_ckpt["epoch"],
                resume_ckpt["global_step"],
            )
    if rank == 0:
        tracker, run_id, run_dir = build.start_run(
            config,
            facade.command,
            resumed_from=resumed_from,
        )
        # the processes Lightning launches for the other ranks re-run this command and
        # join this run: its folder, no tracker run or saved config of their own
        os.environ[build.RUN_DIR_VARIABLE] = str(run_dir)
        if resumed_from is not None:
            os.environ[build.RESUME_VARIABLE] = str(resumed_from)
    else:
        tracker, run_dir = None, Path(_announced(build.RUN_DIR_VARIABLE, rank))
        run_id = run_dir.name
    with build.failed_on_error(tracker):
        ckpt_path = None
        if resume_ckpt is not None:
            ckpt_path = run_dir / "resume.ckpt"
            if rank == 0:
                to_lightning_checkpoint(source, resume_ckpt["path"], ckpt_path)
        monitor = build.build_monitor(config, hooks)
        loggers = build.build_loggers(config, run_id)
        # the plain driver's epoch alerts, written to the same loggers and tracker
        alerts = MetricsEngine(loggers=loggers, tracker=tracker, hooks=hooks) if rank == 0 else None
        manager = build.build_checkpoint_manager(config, run_dir, hooks, tracker)
        callbacks = build_callbacks(
            config.callbacks,
            gradient_monitor=monitor,
            checkpoint_manager=manager,
            tracker=tracker,
            checkpoint_every_n_steps=trainer.checkpoint_every_n_steps,
            config=config,
            params=config.to_dict(),
            hooks=hooks,
            hook_objects=facade.user_hooks,
            alerts=alerts,
        )
        profiler = None
        profile = config.callbacks.profiler
        if profile.enabled:
            schedule = profile.schedule
            profiler = build_profiler(
                profile.kind,
                dirpath=profile.trace_dir,
                schedule=(schedule.wait, schedule.warmup, schedule.active, schedule.repeat),
                memory=profile.memory,
                total_steps=total_steps,
            )
        if facade.log_config and rank == 0:
            log_config_overview(config.overview_rows())
        start = time.perf_counter()
        if rank == 0:
            hooks.fire(HookEvent.ON_TRAIN_START, run_id=run_id, run_dir=run_dir)
            call_hook_objects(facade.user_hooks, "on_training_start", run_id=run_id, config=config)
        try:
            outcome = fit(
                module,
                datamodule,
                callbacks=callbacks,
                loggers=loggers,
                profiler=profiler,
                ckpt_path=ckpt_path,
                default_root_dir=run_dir,
                **_trainer_options(config),
            )
        finally:
            if rank == 0:
                os.environ.pop(build.RUN_DIR_VARIABLE, None)
                os.environ.pop(build.RESUME_VARIABLE, None)
    manager.wait_for_mirror()
    if profiler is not None and profile.kind == "pytorch" and rank == 0:
        # printed at INFO and saved as <trace_dir>/top_operators.txt
        logger.info("top operators by self time:\n%s", top_operators_table(profiler))
    history = outcome.history
    monitor_name, mode = config.checkpoint.monitor, config.checkpoint.mode
    best_epoch = best_metric = None
    if monitor_name in history:
        values = history[monitor_name].astype(float)
        finite = values[values.apply(math.isfinite)]
        if len(finite):
            # ties go to the newer epoch, as in the plain driver and checkpoint retention
            newest_first = finite[::-1]
            index = newest_first.idxmin() if mode == "min" else newest_first.idxmax()
            best_metric = float(finite[index])
            best_epoch = int(history.loc[index, "epoch"])
    checkpoints = manager.list_checkpoints()
    results = TrainingResults(
        run_id=run_id,
        run_dir=run_dir,
        metrics_summary=history,
        best_epoch=best_epoch,
        best_metric=best_metric,
        monitor=monitor_name,
        final_loss=float(history["train/loss"].iloc[-1])
        if "train/loss" in history and len(history)
        else math.nan,
        checkpoint_path=checkpoints[0].path if checkpoints else None,
        best_checkpoint_path=_best_or_none(manager),
        training_time=time.perf_counter() - start,
        global_step=outcome.global_step,
        epochs_completed=outcome.epochs_completed,
    )
    if rank == 0:
        hooks.fire(HookEvent.ON_TRAIN_END, results=results)
        call_hook_objects(facade.user_hooks, "on_training_end", results=results)
    return results


def _announced(variable: str, rank: int) -> str:
    """What rank zero announced to the processes launched for the other ranks."""
    value = os.environ.get(variable)
    if not value:
        raise TrainforgeError(
            f"this process is rank {rank} of a data-parallel run, but rank zero did not "
            f"announce {variable}",
            hint="start data-parallel training with 'trainforge train trainer.strategy=ddp "
            "trainer.devices=N' and let it launch the other processes (external launchers "
            "such as torchrun are not supported)",
        )
    return value
