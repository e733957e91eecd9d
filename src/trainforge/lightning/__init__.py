"""Lightning integration: the only place trainforge imports ``lightning``."""

from trainforge.engine import WeightStatistics  # re-exported: it began here
from trainforge.lightning._callbacks import (
    ExperimentTrackingCallback,
    GradientHealthCallback,
    HookCallback,
    TrainingMonitor,
)
from trainforge.lightning._checkpointing import CheckpointEngineCallback, to_lightning_checkpoint
from trainforge.lightning._datamodule import UniversalDataModule
from trainforge.lightning._factory import build_callbacks
from trainforge.lightning._loggers import LOGGERS, create_logger, logger_dir
from trainforge.lightning._module import HeatmapModule, TaskModule
from trainforge.lightning._profiler import build_profiler, top_operators_table

__all__ = [
    "LOGGERS",
    "CheckpointEngineCallback",
    "ExperimentTrackingCallback",
    "GradientHealthCallback",
    "HeatmapModule",
    "HookCallback",
    "TaskModule",
    "TrainingMonitor",
    "UniversalDataModule",
    "WeightStatistics",
    "build_callbacks",
    "build_profiler",
    "create_logger",
    "logger_dir",
    "to_lightning_checkpoint",
    "top_operators_table",
]
