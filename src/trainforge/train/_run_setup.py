"""Opening a run: its folder, tracked run, loggers and checkpoint manager.

Rank zero of a data-parallel fit opens the run; the processes Lightning launches for the
other ranks join it through two environment variables instead of opening their own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.checkpoint import (
    CheckpointManager,
    KeepBestK,
    KeepEveryNEpochs,
    KeepLastN,
    KeepProtected,
    RetentionPolicy,
)
from trainforge.config import TrainingConfig
from trainforge.engine.metrics import CSVWriter, TensorBoardWriter, logger_dir
from trainforge.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from trainforge.tracking import ExperimentTracker
from trainforge.hooks import HookManager

__all__ = [
    "RESUME_VARIABLE",
    "RUN_DIR_VARIABLE",
    "build_checkpoint_manager",
    "build_loggers",
    "build_tracker",
    "create_run_logger",
    "failed_on_error",
    "run_folder_name",
    "start_run",
]

# Set by rank zero of a data-parallel fit for the processes Lightning launches after it:
# the run folder they join and the exact checkpoint a resumed run continues from.
RUN_DIR_VARIABLE = "TRAINFORGE_DDP_RUN_DIR"
RESUME_VARIABLE = "TRAINFORGE_DDP_RESUME"


def build_tracker(config: TrainingConfig) -> ExperimentTracker | None:
    """``tracking.*`` -> ExperimentTracker (None when disabled)."""
    tracking = config.tracking
    if not tracking.enabled:
        return None
    from trainforge.jobs import current_job_id
    from trainforge.tracking import ExperimentTracker, resolve_database_url  # SQLAlchemy: lazy

    url = resolve_database_url(tracking.database, config.run.output_dir)
    tracker = ExperimentTracker(
        tracking.experiment_name,
        tracking.project_name,
        tags=config.run.tags,
        config=config.record(),
        database=url,
        run_name=config.run.name,
        notes=config.run.notes,
        job_id=current_job_id(),
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


def create_run_logger(kind: str, save_dir: str, run_id: str, **options: Any) -> Any:
    """Logger ``kind`` of one run: CSV and TensorBoard without a framework, others Lightning's."""
    if kind == "csv":
        return CSVWriter(logger_dir(save_dir, run_id, kind))
    if kind == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            raise MissingDependencyError(
                "tensorboard", extra="all", feature="The TensorBoard logger"
            )
        return TensorBoardWriter(logger_dir(save_dir, run_id, kind))
    from trainforge.lightning import create_logger  # W&B, MLflow, Comet: Lightning's loggers

    return create_logger(kind, save_dir=save_dir, run_id=run_id, **options)


def build_loggers(config: TrainingConfig, run_id: str) -> list[Any]:
    """Every enabled logger of ``loggers.*``, writing under ``<save_dir>/<run_id>/``.

    Each logger also gets the resolved config as hyperparameters (MLflow params, W&B
    config, ``hparams.yaml``), with any password in a store URL hidden.
    """
    built = []
    for kind, section in config.loggers:
        if not section.enabled:
            continue
        options = section.model_dump(exclude={"enabled", "save_dir"})
        with _logger_folder(kind, section.save_dir):
            logger = create_run_logger(
                kind, section.save_dir, run_id, run_name=config.run.name, **options
            )
        built.append((kind, section.save_dir, logger))
    if built:
        from trainforge.tracking import display_url

        params = config.to_dict()
        for holder, field in (
            (params["tracking"], "database"),
            (params["loggers"]["mlflow"], "tracking_uri"),
        ):
            if holder.get(field):
                holder[field] = display_url(holder[field])
        for kind, save_dir, logger in built:
            with _logger_folder(kind, save_dir):
                logger.log_hyperparams(params)
    return [logger for _, _, logger in built]


@contextlib.contextmanager
def _logger_folder(kind: str, save_dir: str) -> Iterator[None]:
    """A logger whose folder cannot be written: a config error naming its ``save_dir``."""
    try:
        yield
    except OSError as err:
        where = err.filename or save_dir
        raise ConfigError(
            f"the {kind} logger cannot write under {save_dir}: {err.strerror or err} ({where})",
            key=f"loggers.{kind}.save_dir",
            hint=f"set loggers.{kind}.save_dir to a folder you can write",
        ) from None


def build_checkpoint_manager(
    config: TrainingConfig, run_dir: Path, hooks: HookManager, tracker: Any
) -> CheckpointManager:
    """``checkpoint.*`` -> CheckpointManager in ``<run>/checkpoints`` (or ``dirpath``)."""
    ckpt = config.checkpoint
    directory = Path(ckpt.dirpath) if ckpt.dirpath else run_dir / "checkpoints"
    policies: list[RetentionPolicy] | None = None
    if ckpt.keep_every_n_epochs:
        # replaces the manager's default best-k / last-n pair (protected ones are kept too)
        policies = [
            KeepBestK(ckpt.keep_best_k, ckpt.mode),
            KeepLastN(ckpt.keep_last_n),
            KeepEveryNEpochs(ckpt.keep_every_n_epochs),
            KeepProtected(),
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
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.yaml")
        (run_dir / "command.txt").write_text(shlex.join(command) + "\n", encoding="utf-8")
    except OSError as err:
        if tracker is not None:
            tracker.finish("failed")
        raise ConfigError(
            f"cannot write the run folder {run_dir}: {err.strerror or err}",
            key="run.output_dir",
            hint="set run.output_dir to a folder you can write",
        ) from None
    if resumed_from is not None and tracker is not None:
        tracker.set_tags({"resumed_from": str(resumed_from)})
    return tracker, run_id, run_dir
