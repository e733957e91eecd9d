"""The plain loop driver: trainforge's own single-device loop over the run assembly.

Epochs of :class:`~trainforge.engine.TrainingLoop` and
:class:`~trainforge.engine.ValidationLoop`; every decision (health, logging, checkpoints,
best epoch, early stopping) is the run's :class:`~trainforge.engine.policies.RunPolicies`,
called at the same moments as under Lightning. This module only knows how to run batches,
where the run is, and how to checkpoint that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from trainforge.engine import (
    ResumableSampler,
    RunPosition,
    ScheduleSettings,
    StepInfo,
    StreamLoader,
    TrainingLoop,
    ValidationLoop,
    loader_length,
)
from trainforge.errors import ResumeError
from trainforge.logs import TrainingProgress
from trainforge.train import _build as build
from trainforge.train._assembly import RunAssembly

__all__ = ["DriverOutcome", "run_plain"]


@dataclass(frozen=True)
class DriverOutcome:
    """What a driver reports back to the facade."""

    global_step: int
    epochs_completed: int


class _Run:
    """The plain driver's state: the parts it built and where training is."""

    def __init__(self, run: RunAssembly) -> None:
        config = run.config
        self.run = run
        self.device = build.pick_device(config.trainer.accelerator)
        self.model = run.model.to(self.device)
        self.optimizer = run.optimizer_for(self.model)
        self.scheduler = run.scheduler_for(self.optimizer)
        self.loader = run.datamodule.train_dataloader()
        # the position of the training data: the sampler of trainforge's own loader, or
        # the batch count of a user's DataLoader / an IterableDataset
        self.cursor: ResumableSampler | StreamLoader = (
            self.loader
            if isinstance(self.loader, StreamLoader)
            else cast(ResumableSampler, self.loader.sampler)
        )
        self.accumulator = build.build_accumulator(
            config,
            self.optimizer,
            self.device,
            before_step=self._before_step if run.policies.acts_before_step else None,
        )
        self.position = RunPosition()
        self._pending_sampler: dict[str, Any] | None = None
        self._batches_before = 0

    def _before_step(self, step: int) -> bool:
        return self.run.policies.before_optimizer_step(step, self.model, self.optimizer)

    # -- resume ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Continue the resume point's checkpoint, whichever driver wrote it."""
        point = self.run.resume
        if point is None or point.warm_start:
            return
        checkpoint = point.checkpoint
        self.model.load_state_dict(checkpoint["model_state_dict"])
        if checkpoint.get("optimizer_state_dict"):
            self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        if checkpoint.get("scheduler_state_dict"):
            settings = ScheduleSettings(self.scheduler)
            self.scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
            settings.apply(self.scheduler, self.optimizer)  # the config's lr and length
        position = point.position
        accumulator = point.custom.get("accumulator")
        if point.driver == "plain" and accumulator:
            self.accumulator.load_state_dict(accumulator)
        else:
            self.accumulator.load_state_dict(_at_step_boundary(point, self.accumulator))
        self.run.policies.load_state_dict(point.policies)
        self.run.policies.cadence.saved(position.global_step)
        self.position = position
        self._pending_sampler = position.sampler

    # -- epochs ---------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> int:
        """Position the sampler for ``epoch``; return the samples of it already trained."""
        cursor = self.cursor
        pending, self._pending_sampler = self._pending_sampler, None
        done = batches = 0
        if pending is not None and int(pending.get("epoch", -1)) == epoch:
            try:
                cursor.load_state_dict(pending)
            except (KeyError, ValueError) as exc:
                raise ResumeError(f"cannot continue the checkpoint's epoch: {exc}") from None
            done = int(pending.get("position", 0))
            batches = int(pending.get("batches", -(-done // int(self.loader.batch_size or 1))))
        else:
            cursor.set_epoch(epoch)
        self.position.epoch, self.position.samples_done = epoch, done
        self.position.batches_done = self._batches_before = batches
        return done

    def on_step(self, info: StepInfo) -> bool:
        """After every optimizer step: the policies log and checkpoint."""
        self.position.samples_done = info.samples_done
        self.position.batches_done = self._batches_before + info.batches_done
        self.position.global_step = info.global_step
        self.run.policies.after_optimizer_step(
            info.global_step, info.epoch, self.model, info.loss, save=self.save
        )
        return False

    def _cursor_state(self, samples: int, batches: int) -> dict[str, Any]:
        if isinstance(self.cursor, StreamLoader):
            return self.cursor.state_dict(batches=batches, samples=samples)
        return self.cursor.state_dict(consumed=samples)

    def save(self, metrics: Mapping[str, float], epoch_done: bool) -> Path | None:
        """Checkpoint the current state (after a step, or at the end of an epoch)."""
        run = self.run
        position = self.position
        epoch = position.epoch
        if epoch_done:
            state = RunPosition(
                epoch + 1,
                self.accumulator.effective_step,
                epochs_completed=position.epochs_completed,
                sampler={**self._cursor_state(0, 0), "epoch": epoch + 1},
            )
        else:
            state = RunPosition(
                epoch,
                self.accumulator.effective_step,
                batches_done=position.batches_done,
                samples_done=position.samples_done,
                epochs_completed=position.epochs_completed,
                sampler={
                    **self._cursor_state(position.samples_done, position.batches_done),
                    "epoch": epoch,
                },
            )
        values = dict(metrics)
        if run.checkpoints.monitor:
            values.setdefault(run.checkpoints.monitor, math.nan)  # a step save before validation
        return run.checkpoints.save(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            epoch=epoch,
            metrics=values,
            global_step=self.accumulator.effective_step,
            custom_state={
                "driver": "plain",
                "position": state.to_dict(),
                "policies": run.policies.state_dict(),
                "accumulator": self.accumulator.state_dict(),
            },
            config=run.record,
        )


def _at_step_boundary(point: Any, accumulator: Any) -> dict[str, Any]:
    """The accumulator state of a checkpoint without one (another driver wrote it)."""
    position = point.position
    if position.batches_done % accumulator.accumulation_steps:
        raise ResumeError(
            f"{point.path} was written by the {point.driver} driver inside an accumulation "
            f"window ({position.batches_done} batches into an epoch, "
            f"{accumulator.accumulation_steps} batches per step): the plain driver cannot "
            "rebuild that window's gradients",
            path=point.path,
            hint="resume it with trainer.engine=lightning, or from a checkpoint at an "
            "optimizer-step boundary (an epoch end or a step checkpoint)",
        )
    skipped = (point.policies.get("health") or {}).get("skipped_steps", 0)
    return {
        "accumulation_steps": accumulator.accumulation_steps,
        "micro_steps": position.global_step * accumulator.accumulation_steps,
        "optimizer_steps": position.global_step,
        "skipped_steps": skipped,
        "window_position": 0,
        "window_weight": 0.0,
        "pending_grads": None,
    }


def run_plain(run: RunAssembly) -> DriverOutcome:
    """Train ``run`` with the plain loop; the policies decide everything but the batches."""
    config, policies = run.config, run.policies
    trainer = config.trainer
    state = _Run(run)
    state.restore()
    model = cast(nn.Module, torch.compile(state.model)) if trainer.compile else state.model
    dtype = build.autocast_dtype(trainer.precision, state.device)
    loader = state.loader
    loop = TrainingLoop(
        model,
        run.loss_fn,
        state.accumulator,
        device=state.device,
        autocast_dtype=dtype,
        on_step=state.on_step,
        max_steps=trainer.max_steps,
        max_batches=build.batch_limit(trainer.limit_train_batches, loader_length(loader)),
        forward_inputs=run.forward_inputs,
    )
    validation = val_loader = None
    if run.has_validation:
        val_loader = run.datamodule.val_dataloader()
        validation = ValidationLoop(
            model,
            run.loss_fn,
            metric_fn=run.metric_fn,
            device=state.device,
            autocast_dtype=dtype,
            max_batches=build.batch_limit(trainer.limit_val_batches, loader_length(val_loader)),
            forward_inputs=run.forward_inputs,
        )
    max_epochs = trainer.max_epochs or math.inf
    batches = loop.max_batches or loader_length(loader)
    samples = run.datamodule.train_samples()
    total = None
    if samples is not None and batches is not None:
        total = min(samples, batches * int(loader.batch_size or config.data.batch_size))
    epoch = state.position.epoch

    def reached_max_steps() -> bool:
        return (
            trainer.max_steps is not None and state.accumulator.effective_step >= trainer.max_steps
        )

    with TrainingProgress(
        total * (trainer.max_epochs or 1) if total is not None else None,
        enabled=trainer.enable_progress_bar,
    ) as progress:
        loop.progress = progress if progress.enabled else None  # off a terminal: no calls
        progress.track_optimizer(state.optimizer)
        while epoch < max_epochs and not reached_max_steps():
            policies.start_epoch(epoch)
            before = state.begin_epoch(epoch)
            result = loop.run_epoch(loader, epoch, state.scheduler, samples_before=before)
            step = state.accumulator.effective_step
            val: dict[str, float] = {}
            if validation is not None and val_loader is not None:
                val = validation.run_epoch(val_loader, epoch).metrics
                val = policies.end_validation(epoch, step, val)
            if result.completed:
                state.position.epochs_completed = epoch + 1
            completed = result.completed

            def save(
                values: Mapping[str, float], done: bool, whole: bool = completed
            ) -> Path | None:
                # an epoch cut short (max_steps) keeps its position: a resumed run with a
                # higher limit trains the rest of it, not the whole of it again
                return state.save(values, done and whole)

            outcome = policies.end_epoch(
                epoch,
                step,
                {
                    "train/loss": result.metrics["train/loss"],
                    "system/epoch_time_s": result.duration_s,
                    "system/throughput": result.throughput,
                },
                val,
                final=not completed or epoch + 1 >= max_epochs or reached_max_steps(),
                save=save,
            )
            if outcome.stop or not result.completed:
                break
            epoch += 1
    policies.end(state.accumulator.effective_step, save=state.save)
    return DriverOutcome(state.accumulator.effective_step, state.position.epochs_completed)
