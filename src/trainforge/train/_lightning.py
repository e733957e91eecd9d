"""The Lightning driver: the run assembly as a ``TaskModule`` fitted by ``lightning.Trainer``.

The parts are the run assembly's (loss, data module, policies, checkpoint manager,
loggers); Lightning runs the batches, devices and processes, and one
:class:`~trainforge.lightning.RunCallback` hands every decision to the same
:class:`~trainforge.engine.policies.RunPolicies` the plain driver calls.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import torch.distributed
from torch import nn

from trainforge.config import TrainingConfig
from trainforge.config._schema import SHARDED_STRATEGIES
from trainforge.engine import loader_length
from trainforge.lightning import (
    LightningSaver,
    RunCallback,
    RunProgressBar,
    TaskModule,
    UniversalDataModule,
    build_profiler,
    build_strategy,
    fit,
    lightning_loops,
    to_lightning_checkpoint,
    top_operators_table,
)
from trainforge.logs import progress_drawn
from trainforge.train import _build as build
from trainforge.train._assembly import RunAssembly
from trainforge.train._checks import shard_plan
from trainforge.train._plain import DriverOutcome
from trainforge.train._run_setup import RESUME_VARIABLE, RUN_DIR_VARIABLE

__all__ = ["run_lightning", "trainer_options"]

logger = logging.getLogger(__name__)


def trainer_options(config: TrainingConfig, model: nn.Module | None = None) -> dict[str, Any]:
    """``trainer.*`` -> ``lightning.Trainer`` arguments (``model``: what ``fsdp`` wraps)."""
    trainer = config.trainer
    automatic = trainer.optimization == "automatic"
    plan = shard_plan(config)
    units = plan.units(model) if plan is not None and model is not None else []
    options: dict[str, Any] = {
        "max_epochs": trainer.max_epochs if trainer.max_epochs is not None else -1,
        "max_steps": trainer.max_steps if trainer.max_steps is not None else -1,
        "accelerator": trainer.accelerator,
        "devices": trainer.devices,
        "num_nodes": trainer.num_nodes,
        "strategy": build_strategy(
            trainer.strategy,
            processes=build.data_parallel_size(config),
            timeout_s=trainer.collective_timeout_s,
            plan=plan,
            units=units,
        ),
        "precision": trainer.precision,
        "accumulate_grad_batches": trainer.accumulate_grad_batches if automatic else 1,
        "gradient_clip_val": trainer.gradient_clip_val if automatic else None,
        "val_check_interval": trainer.val_check_interval,
        # off a terminal no bar is drawn: no progress-bar callback either (Lightning calls
        # every hook of every callback on every batch)
        "enable_progress_bar": progress_drawn(trainer.enable_progress_bar),
        "deterministic": config.run.deterministic,
        # UniversalDataModule gives each data-parallel process its share itself
        "use_distributed_sampler": False,
    }
    if trainer.limit_train_batches is not None:
        options["limit_train_batches"] = trainer.limit_train_batches
    if trainer.limit_val_batches is not None:
        options["limit_val_batches"] = trainer.limit_val_batches
    return options


def _without_validation(options: dict[str, Any]) -> dict[str, Any]:
    """Trainer options of a run without a validation set: no validation loop at all."""
    return {**options, "limit_val_batches": 0, "num_sanity_val_steps": 0}


def _module(run: RunAssembly) -> TaskModule:
    trainer = run.config.trainer
    manual = trainer.optimization == "manual"
    return TaskModule(
        run.model,
        run.loss_fn,
        optimizer_factory=run.optimizer_for,
        scheduler_factory=run.scheduler_for,
        metric_fn=run.metric_fn,
        optimization=trainer.optimization,
        micro_batch_size=trainer.micro_batch_size if manual else None,
        accumulation_steps=trainer.accumulate_grad_batches if manual else 1,
        max_grad_norm=trainer.gradient_clip_val if manual else None,
        compile=trainer.compile,
        forward_inputs=run.forward_inputs,
        sharding=shard_plan(run.config) if trainer.strategy == "model_parallel" else None,
    )


def _resume_checkpoint(run: RunAssembly, trainer: Any) -> Path | None:
    """The ``.ckpt`` a resumed fit starts from (rank zero writes it), with the policies."""
    point = run.resume
    if point is None or point.warm_start:
        return None
    run.policies.load_state_dict(point.policies)
    run.policies.cadence.saved(point.position.global_step)
    path = run.run_dir / "resume.ckpt"
    if run.rank != 0:
        if run.position.external:  # every rank reads the file rank zero is writing
            torch.distributed.barrier()
        return path
    loops = None
    if point.lightning_state() is None:  # the plain driver wrote it: rebuild Lightning's loops
        config = run.config.trainer
        batches = loader_length(run.datamodule.train_dataloader())
        limit = build.batch_limit(config.limit_train_batches, batches)
        if batches is not None and limit is not None:
            batches = min(batches, limit)
        loops = lightning_loops(
            {"fit_loop": trainer.fit_loop.state_dict()},
            point.position,
            batches_per_epoch=batches if batches is not None else limit,
            accumulate=config.accumulate_grad_batches,
            manual=config.optimization == "manual",
        )
    written = to_lightning_checkpoint(point.checkpoint, path, loops=loops)
    if run.position.external:
        torch.distributed.barrier()
    return written


def run_lightning(run: RunAssembly) -> DriverOutcome:
    """Fit ``run`` with ``lightning.Trainer``; the same decisions as the plain driver."""
    config = run.config
    profile = config.callbacks.profiler
    profiler = None
    if profile.enabled:
        schedule = profile.schedule
        profiler = build_profiler(
            profile.kind,
            dirpath=profile.trace_dir,
            schedule=(schedule.wait, schedule.warmup, schedule.active, schedule.repeat),
            memory=profile.memory,
            total_steps=run.total_steps,
        )
    sharded = config.trainer.strategy in SHARDED_STRATEGIES
    saver = LightningSaver(run.checkpoints, run.policies, config=run.record, sharded=sharded)
    if run.rank == 0:
        # the processes Lightning launches for the other ranks re-run this command and
        # join this run: its folder, and the exact checkpoint it continues from
        os.environ[RUN_DIR_VARIABLE] = str(run.run_dir)
        if run.resume is not None:
            os.environ[RESUME_VARIABLE] = str(run.resume.path)
    # build_datamodule made Lightning's subclass for this driver
    datamodule = cast(UniversalDataModule, run.datamodule)
    options = trainer_options(config, run.model)
    if not run.has_validation:
        options = _without_validation(options)
    try:
        outcome = fit(
            _module(run),
            datamodule,
            callbacks=[
                RunCallback(run.policies, saver, every_rank=sharded),
                # the plain driver's bar (Lightning's own redraws on every batch)
                *([RunProgressBar()] if options["enable_progress_bar"] else []),
            ],
            profiler=profiler,
            ckpt_path=lambda trainer: _resume_checkpoint(run, trainer),
            default_root_dir=run.run_dir,
            **options,
        )
    finally:
        if run.rank == 0:
            os.environ.pop(RUN_DIR_VARIABLE, None)
            os.environ.pop(RESUME_VARIABLE, None)
    if profiler is not None and profile.kind == "pytorch" and run.rank == 0:
        # printed at INFO and saved as <trace_dir>/top_operators.txt
        logger.info("top operators by self time:\n%s", top_operators_table(profiler))
    return DriverOutcome(outcome.global_step, outcome.epochs_completed)
