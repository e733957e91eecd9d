"""``Trainer``: one call from a config to a trained, tracked, checkpointed model.

The facade builds the shared parts of a run once (:mod:`trainforge.train._assembly`),
checks the config against the machine, the task and the data before anything is written,
hands the run to the plain or the Lightning driver, and builds the results. Resume, the
best epoch and the results exist once, for both drivers.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from trainforge.config import TrainingConfig
from trainforge.engine import TaskSpec
from trainforge.errors import CheckpointNotFoundError, ConfigError, GradientHealthError
from trainforge.hooks import HookEvent, HookManager
from trainforge.logs import log_config_overview, set_process_label
from trainforge.seeding import set_random_seed
from trainforge.train import _build as build
from trainforge.train._assembly import RunAssembly, assemble
from trainforge.train._checks import check_batches, check_run, with_data_pad_id
from trainforge.train._cluster import RankZeroChannel, join_process_group, locate_process
from trainforge.train._plain import DriverOutcome, run_plain
from trainforge.train._results import TrainingResults
from trainforge.train._resume import ResumePoint, open_resume
from trainforge.train._run_setup import RESUME_VARIABLE, RUN_DIR_VARIABLE, failed_on_error

__all__ = ["Trainer", "TrainingHooks", "TrainingResults"]

logger = logging.getLogger(__name__)


@runtime_checkable
class TrainingHooks(Protocol):
    """Methods a hook object may define (any subset); each gets its event's payload.

    A method receives the payload names it declares (or all with ``**kwargs``); the
    table of every event is in :mod:`trainforge.hooks`.
    """

    def on_training_start(self, run_id: str, run_dir: Path, config: TrainingConfig) -> None:
        """Before the first epoch."""

    def on_epoch_start(self, epoch: int) -> None:
        """Before each epoch."""

    def on_batch_end(self, global_step: int, epoch: int) -> None:
        """After each optimizer step."""

    def on_validation_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """After each validation."""

    def on_epoch_end(
        self, epoch: int, metrics: dict[str, float], checkpoint_path: Path | None
    ) -> None:
        """After each epoch, with its checkpoint (None when none was written)."""

    def on_training_end(self, results: TrainingResults) -> None:
        """After the last epoch."""


class Trainer:
    """Train a model from a :class:`TrainingConfig` with the plain or the Lightning driver.

    Args:
        model: The network; built from ``model.name`` / ``model.kwargs`` when None.
        training_config: The config (all defaults when None).
        task_spec: The task; derived from the ``task`` section when None.
        hooks: A :class:`HookManager`, objects with :class:`TrainingHooks` methods (each
            registered through one manager), or a list of both.
        allow_config_changes: Breaking config keys accepted when resuming.
        command: The command line, saved in the run folder (``sys.argv`` when None).
        log_config: Log the config overview (non-default values with provenance) first.

    Examples:
        >>> from trainforge.config import load_config
        >>> cfg = load_config(cli=["trainer.max_epochs=1", "trainer.limit_train_batches=2",
        ...                        "trainer.enable_progress_bar=false"])
        >>> results = Trainer(training_config=cfg).train()
        >>> results.monitor, round(results["best_metric"], 4)
        ('val/loss', 2.2951)
        >>> results.run_dir.name
        'run-000001'
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        training_config: TrainingConfig | None = None,
        task_spec: TaskSpec | None = None,
        hooks: HookManager | Any | Sequence[Any] | None = None,
        *,
        allow_config_changes: Sequence[str] = (),
        command: Sequence[str] | None = None,
        log_config: bool = True,
    ) -> None:
        self.config = training_config if training_config is not None else TrainingConfig()
        self.model = model
        self.task_spec = task_spec
        given = list(hooks) if isinstance(hooks, (list, tuple)) else [hooks]
        managers = [h for h in given if isinstance(h, HookManager)]
        if len(managers) > 1:
            raise ValueError("pass at most one HookManager in hooks")
        self.hook_manager = managers[0] if managers else HookManager()
        for obj in given:
            if obj is not None and not isinstance(obj, HookManager):
                self.hook_manager.register_object(obj)
        self.allow_config_changes = tuple(allow_config_changes)
        self.log_config = log_config
        self.command = list(command) if command is not None else list(sys.argv)

    def train(
        self,
        train_data: Any = None,
        val_data: Any = None,
        resume_from: str | Path | None = None,
    ) -> TrainingResults:
        """Train; return results. ``resume_from`` is ``last``, ``best`` or a path.

        Args:
            train_data: A torch ``Dataset``, an ``IterableDataset``, a Hugging Face
                ``datasets.Dataset`` / ``DatasetDict`` (its ``train`` and ``validation``
                splits) or a ``DataLoader`` (used as it is); ``data.name``'s datasets
                when None.
            val_data: The validation data, in any of those forms. None with
                ``train_data`` given: no validation, and checkpoints rank by
                ``train/loss`` unless the config names another monitor.
            resume_from: ``last``, ``best`` or a checkpoint path.

        Raises:
            ConfigError: The config cannot run here (device, precision, monitor names):
                raised before anything is written.
            GradientHealthError: Gradients unhealthy for too many steps in a row; the
                run is marked failed and the checkpoints written before stay loadable.
            ResumeError: The checkpoint does not fit the config or the model.
        """
        config = self.config
        set_random_seed(config.run.seed, config.run.deterministic)
        train_data, val_data = build.split_datasets(train_data, val_data)
        spec = self.task_spec or build.task_spec_from_config(config)
        spec = with_data_pad_id(spec, train_data, val_data)
        model = self.model if self.model is not None else build.build_model_for(config, spec)
        data_given = train_data is not None
        if train_data is None:  # data.name's datasets; a given train set has no built val
            built_train, built_val = build.build_datasets_for(config, spec)
            train_data = built_train
            val_data = val_data if val_data is not None else built_val
        has_validation = val_data is not None and config.trainer.limit_val_batches != 0
        if not has_validation:
            monitor_training_loss(config)
        check_run(config, spec, has_validation=has_validation, model=model)
        sdpa = build.apply_sdpa(config, model, train_data)
        datamodule = build.build_datamodule(config, train_data, val_data, spec)
        # bad data settings fail here, before a run starts
        check_batches(datamodule, has_validation=has_validation)
        lightning = config.trainer.engine == "lightning"
        processes = build.data_parallel_size(config)
        if datamodule.streams and processes > 1:
            raise ConfigError(
                f"the training data is a DataLoader or an IterableDataset, which every one of "
                f"the {processes} data-parallel processes would read whole",
                key="trainer.devices",
                hint="pass the Dataset itself (trainforge splits it across the processes), "
                "or train on one device",
            )
        position = locate_process(
            config, build.devices_per_node(config), spawned=RUN_DIR_VARIABLE in os.environ
        )
        set_process_label(position.label)
        join_process_group(config, position)
        channel = RankZeroChannel(position)
        resume: ResumePoint | None = None
        if resume_from is not None:
            opened: list[ResumePoint] = []

            def open_on_rank_zero() -> str:
                opened.append(self._resume(resume_from, model))
                return str(opened[0].path)

            # every rank continues from the checkpoint rank zero resolved ("last" may move)
            target = channel.share(RESUME_VARIABLE, open_on_rank_zero)
            resume = opened[0] if opened else self._resume(str(target), model)
        batches = build.train_batches(config, datamodule, processes)
        run = assemble(
            config,
            spec=spec,
            model=model,
            datamodule=datamodule,
            has_validation=has_validation,
            hooks=self.hook_manager,
            command=self.command,
            resume=resume,
            total_steps=build.total_optimizer_steps(config, batches),
            position=position,
        )
        with failed_on_error(run.tracker):
            if run.tracker is not None:
                run.tracker.set_tags(
                    {
                        "engine": config.trainer.engine,
                        "world_size": processes,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "sdpa_patched_layers": len(sdpa.patched_layers),
                    }
                )
            if self.log_config and position.global_rank == 0:
                log_config_overview(config.overview_rows())
            run.hooks.fire(
                HookEvent.ON_TRAIN_START, run_id=run.run_id, run_dir=run.run_dir, config=config
            )
        start = time.perf_counter()
        outcome = self._drive(run, lightning)
        results = TrainingResults(
            run_id=run.run_id,
            run_dir=run.run_dir,
            metrics_summary=run.metrics.get_epoch_summary(),
            best_epoch=run.policies.best.epoch,
            best_metric=run.policies.best.value,
            monitor=config.checkpoint.monitor,
            final_loss=run.policies.final_loss,
            checkpoint_path=run.policies.last_checkpoint,
            best_checkpoint_path=_best_or_none(run),
            training_time=time.perf_counter() - start,
            global_step=outcome.global_step,
            epochs_completed=outcome.epochs_completed,
        )
        if config.export.bundle and position.global_rank == 0:
            data = val_data if has_validation else train_data
            results.export_path = _export_best(results, self.model, data, data_given)
        run.hooks.fire(HookEvent.ON_TRAIN_END, results=results)
        return results

    def _resume(self, target: str | Path, model: nn.Module) -> ResumePoint:
        return open_resume(
            self.config,
            target,
            self.hook_manager,
            allow_changes=self.allow_config_changes,
            model=model,
        )

    def _drive(self, run: RunAssembly, lightning: bool) -> DriverOutcome:
        """Run the driver; finish the tracked run and the loggers whatever happens."""
        status = "failed"
        try:
            if lightning:
                from trainforge.train._lightning import run_lightning

                outcome = run_lightning(run)
            else:
                outcome = run_plain(run)
            status = "completed"
            return outcome
        except GradientHealthError:
            logger.error(
                "training stopped: unhealthy gradients; the last good checkpoint is %s",
                run.policies.last_checkpoint or "none (no checkpoint was written before)",
            )
            raise
        except KeyboardInterrupt:
            status = "killed"
            raise
        finally:
            run.metrics.close("success" if status == "completed" else "failed")
            run.checkpoints.wait_for_mirror()
            if run.tracker is not None:
                run.tracker.finish(status)


def monitor_training_loss(config: TrainingConfig) -> None:
    """A run without validation: default ``val/`` monitors become ``train/loss`` (noticed once).

    Monitors the config sets explicitly are left alone; ``check_run`` rejects a ``val/``
    one with a message naming its key.
    """
    keys = ["checkpoint.monitor"]
    if config.callbacks.early_stopping.enabled:
        keys.append("callbacks.early_stopping.monitor")
    changed = []
    for key in keys:
        section, _, name = key.rpartition(".")
        node: Any = config
        for part in section.split("."):
            node = getattr(node, part)
        value = getattr(node, name)
        if value.startswith("val/") and config.provenance_of(key).is_default:
            config.update(key, "train/loss", reason="no validation set")
            changed.append(key)
    if changed:
        logger.warning(
            "this run has no validation set: %s = train/loss (set %s to monitor another "
            "training metric)",
            " and ".join(changed),
            "it" if len(changed) == 1 else "them",
        )


def _export_best(
    results: TrainingResults, model: nn.Module | None, data: Any, data_given: bool
) -> Path:
    """``export.bundle``: the best checkpoint (else the newest) as ``<run>/export``.

    A model or data the caller passed (not built from the config) is used as it is.
    """
    from trainforge.train._export import export_checkpoint

    checkpoint = results.best_checkpoint_path or results.checkpoint_path
    if checkpoint is None:
        raise CheckpointNotFoundError(
            f"export.bundle=true, but run {results.run_id} wrote no checkpoint to export",
            key="export.bundle",
            hint="keep checkpointing on, or export later with `trainforge export`",
        )
    bundle = export_checkpoint(
        checkpoint,
        output=results.run_dir / "export",
        model=model,
        sample_data=data if data_given else None,
    )
    logger.info("export bundle: %s (%s)", bundle.path, ", ".join(bundle.shipped))
    return bundle.path


def _best_or_none(run: RunAssembly) -> Path | None:
    if run.rank != 0:
        return None
    try:
        return run.checkpoints.get_best()
    except FileNotFoundError:
        return None
