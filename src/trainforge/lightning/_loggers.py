"""Experiment loggers: Lightning's logger classes, built by name, usable without a Trainer.

Both loop drivers log through the same objects: the Lightning driver hands them to
``lightning.Trainer(logger=...)``, the plain driver calls ``log_metrics(metrics, step)``
and ``finalize(status)`` on them directly. Every logger writes under
``<save_dir>/<run_id>/<kind>/`` so two runs never share files.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from trainforge.errors import MissingDependencyError, TrainforgeError
from trainforge.registry import Registry

__all__ = ["LOGGERS", "create_logger", "logger_dir"]

LoggerFactory = Callable[..., Logger]
LOGGERS: Registry[LoggerFactory] = Registry("logger")


def logger_dir(save_dir: str | Path, run_id: str, kind: str) -> Path:
    """Where logger ``kind`` of run ``run_id`` writes: ``<save_dir>/<run_id>/<kind>``."""
    return Path(save_dir) / run_id / kind


def _require(module: str, extra: str, feature: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, extra=extra, feature=feature)


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
    from lightning.pytorch.loggers import WandbLogger

    directory = logger_dir(save_dir, run_id, "wandb")
    directory.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        name=run_name or run_id,
        save_dir=str(directory),
        id=run_id,
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
    project: str = "trainforge",
    offline: bool = True,
    **_: Any,
) -> Logger:
    _require("comet_ml", "comet", "The Comet logger")
    from lightning.pytorch.loggers import CometLogger

    directory = logger_dir(save_dir, run_id, "comet")
    directory.mkdir(parents=True, exist_ok=True)
    if offline:
        # CometLogger(online=False) disables logging entirely in Lightning 2.6; comet_ml's
        # own switch keeps the experiment offline and writes an archive to the directory.
        os.environ["COMET_START_ONLINE"] = "false"
        return CometLogger(offline_directory=str(directory), project=project)
    if not os.environ.get("COMET_API_KEY"):
        raise TrainforgeError(
            "the Comet logger is set to online but no API key is configured",
            key="loggers.comet.offline",
            hint="export COMET_API_KEY=..., or set loggers.comet.offline=true",
        )
    return CometLogger(project=project)


def create_logger(kind: str, *, save_dir: str | Path, run_id: str, **options: Any) -> Logger:
    """Build the logger ``kind`` (csv, tensorboard, wandb, mlflow, comet) for one run.

    Raises:
        RegistryError: Unknown kind (with "did you mean").
        MissingDependencyError: The logger's package is not installed (names the extra).

    Examples:
        >>> logger = create_logger("csv", save_dir="outputs", run_id="run-1")  # doctest: +SKIP
        >>> logger.log_metrics({"train/loss": 0.5}, step=1)  # doctest: +SKIP
    """
    return LOGGERS.get(kind)(save_dir=save_dir, run_id=run_id, **options)
