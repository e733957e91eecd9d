"""Experiment loggers: Lightning's logger classes, built by name, usable without a Trainer.

Both loop drivers log through the same objects: the Lightning driver hands them to
``lightning.Trainer(logger=...)``, the plain driver calls ``log_metrics(metrics, step)``
and ``finalize(status)`` on them directly. Every logger writes under
``<save_dir>/<run_id>/<kind>/`` so two runs never share files.

A logger serves one run: ``finalize`` ends the W&B run and the Comet experiment (Lightning
leaves both open), so their files are complete when training returns and the next run
in the same process starts a run of its own.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import (
    CometLogger,
    CSVLogger,
    Logger,
    TensorBoardLogger,
    WandbLogger,
)
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from trainforge.engine.metrics import logger_dir
from trainforge.errors import MissingDependencyError, TrainforgeError
from trainforge.registry import Registry

__all__ = ["LOGGERS", "create_logger", "logger_dir"]

LoggerFactory = Callable[..., Logger]
LOGGERS: Registry[LoggerFactory] = Registry("logger")
"""Experiment logger factories by name (the sections of ``loggers``)."""


def _require(module: str, extra: str, feature: str) -> None:
    # find_spec, not an import: comet_ml must be first imported by CometLogger, which sets
    # COMET_DISABLE_AUTO_LOGGING beforehand. find_spec also reports a module blocked with
    # sys.modules[name] = None as absent.
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, extra=extra, feature=feature)


class _WandbRunLogger(WandbLogger):
    """WandbLogger whose ``finalize`` finishes the W&B run (exit code 1 unless success).

    Lightning's own finalize leaves the run open: an offline run's files stay incomplete
    until the process exits, and the next WandbLogger in the process reuses that run.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._finished = False
        super().__init__(**kwargs)
        # Lightning always passes anonymous=None, which wandb 0.31 warns about on every run
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log checkpoints as Lightning does, then finish the run once."""
        super().finalize(status)
        if self._experiment is not None and not self._finished:
            self._finished = True
            self._experiment.finish(exit_code=0 if status in ("success", "finished") else 1)


class _CometRunLogger(CometLogger):
    """CometLogger that can write an offline archive and ends the experiment on finalize.

    ``CometLogger(online=False)`` disables the experiment in Lightning 2.6 (nothing is
    logged); here ``comet_ml.start(online=False)`` is used instead, without touching the
    process environment. Lightning's finalize only flushes; the offline archive is
    written when the experiment ends.
    """

    def __init__(self, *, offline: bool, **kwargs: Any) -> None:
        self._start_offline = offline  # read by _create_experiment, called by __init__
        self._ended = False
        super().__init__(**kwargs)

    def _create_experiment(self) -> None:
        if self._start_offline:
            self._online = False
        super()._create_experiment()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Flush as Lightning does, then end the experiment once (writes the archive)."""
        super().finalize(status)
        if self._experiment is not None and not self._ended:
            self._ended = True
            self._experiment.end()


@LOGGERS.register("csv")
def _csv(*, save_dir: str | Path, run_id: str, **_: Any) -> Logger:
    # name="" and version="" put metrics.csv directly in <save_dir>/<run_id>/csv
    return CSVLogger(save_dir=logger_dir(save_dir, run_id, "csv"), name="", version="")


@LOGGERS.register("tensorboard", aliases=("tb",))
def _tensorboard(*, save_dir: str | Path, run_id: str, **_: Any) -> Logger:
    _require("tensorboard", "all", "The TensorBoard logger")
    return TensorBoardLogger(
        save_dir=logger_dir(save_dir, run_id, "tensorboard"),
        name="",
        version="",
        default_hp_metric=False,
    )


@LOGGERS.register("wandb")
def _wandb(
    *,
    save_dir: str | Path,
    run_id: str,
    run_name: str | None = None,
    project: str = "trainforge",
    entity: str | None = None,
    offline: bool = True,
    **_: Any,
) -> Logger:
    _require("wandb", "wandb", "The W&B logger")
    directory = logger_dir(save_dir, run_id, "wandb")
    directory.mkdir(parents=True, exist_ok=True)
    # No id=run_id: trainforge run ids restart at run-000001 in every output folder, and
    # W&B run ids must be unique in a project, so W&B picks the id and run_id is the name.
    return _WandbRunLogger(
        name=run_name or run_id,
        save_dir=str(directory),
        project=project,
        entity=entity,
        offline=offline,
    )


@LOGGERS.register("mlflow")
def _mlflow(
    *,
    save_dir: str | Path,
    run_id: str,
    run_name: str | None = None,
    experiment_name: str = "trainforge",
    tracking_uri: str | None = None,
    **_: Any,
) -> Logger:
    _require("mlflow", "mlflow", "The MLflow logger")
    from lightning.pytorch.loggers import MLFlowLogger

    directory = logger_dir(save_dir, run_id, "mlflow")
    directory.mkdir(parents=True, exist_ok=True)
    return MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or run_id,
        tracking_uri=tracking_uri or f"sqlite:///{directory.resolve() / 'mlflow.db'}",
        artifact_location=(directory / "artifacts").resolve().as_uri(),
    )


@LOGGERS.register("comet")
def _comet(
    *,
    save_dir: str | Path,
    run_id: str,
    run_name: str | None = None,
    project: str = "trainforge",
    offline: bool = True,
    **_: Any,
) -> Logger:
    _require("comet_ml", "comet", "The Comet logger")
    # CometLogger sets this itself, but only after its installed-check has imported
    # comet_ml: with auto-logging on, comet patches TensorBoard's writer and logs every
    # scalar of the TensorBoard logger a second time.
    os.environ["COMET_DISABLE_AUTO_LOGGING"] = "1"
    name = run_name or run_id
    if offline:
        directory = logger_dir(save_dir, run_id, "comet")
        directory.mkdir(parents=True, exist_ok=True)
        return _CometRunLogger(
            offline=True, offline_directory=str(directory), project=project, name=name
        )
    if not os.environ.get("COMET_API_KEY"):
        raise TrainforgeError(
            "the Comet logger is set to online but no API key is configured",
            key="loggers.comet.offline",
            hint="export COMET_API_KEY=..., or set loggers.comet.offline=true",
        )
    return _CometRunLogger(offline=False, project=project, name=name)


def create_logger(kind: str, *, save_dir: str | Path, run_id: str, **options: Any) -> Logger:
    """Build the logger ``kind`` (csv, tensorboard, wandb, mlflow, comet) for one run.

    Raises:
        RegistryError: Unknown kind (with "did you mean").
        MissingDependencyError: The logger's package is not installed (names the extra).

    Examples:
        >>> logger = create_logger("csv", save_dir="outputs", run_id="run-1")
        >>> logger.log_metrics({"train/loss": 0.5}, step=1)
        >>> logger.save()
        >>> logger.log_dir
        'outputs/run-1/csv/'
    """
    return LOGGERS.get(kind)(save_dir=save_dir, run_id=run_id, **options)
