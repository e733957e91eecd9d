"""Lightning integration: the only place trainforge imports ``lightning``.

Thin adapters over framework-free objects: the run's policies
(:mod:`trainforge.engine.policies`), the checkpoint manager and the tracker.
"""

from trainforge.engine import WeightStatistics  # re-exported: it began here
from trainforge.lightning._callbacks import (
    EarlyStoppingCallback,
    ExperimentTrackingCallback,
    GradientHealthCallback,
    TrainingMonitor,
)
from trainforge.lightning._checkpointing import (
    CheckpointEngineCallback,
    LightningSaver,
    lightning_loops,
    to_lightning_checkpoint,
)
from trainforge.lightning._cluster import ClusterPosition, cluster_position
from trainforge.lightning._datamodule import UniversalDataModule, sample_count
from trainforge.lightning._driver import FitOutcome, fit
from trainforge.lightning._loggers import LOGGERS, create_logger, logger_dir
from trainforge.lightning._module import HeatmapModule, TaskModule
from trainforge.lightning._profiler import build_profiler, top_operators_table
from trainforge.lightning._progress import RunProgressBar
from trainforge.lightning._run_callback import RunCallback
from trainforge.lightning._strategies import build_strategy

__all__ = [
    "LOGGERS",
    "CheckpointEngineCallback",
    "ClusterPosition",
    "EarlyStoppingCallback",
    "ExperimentTrackingCallback",
    "FitOutcome",
    "GradientHealthCallback",
    "HeatmapModule",
    "LightningSaver",
    "RunCallback",
    "RunProgressBar",
    "TaskModule",
    "TrainingMonitor",
    "UniversalDataModule",
    "WeightStatistics",
    "build_profiler",
    "build_strategy",
    "cluster_position",
    "create_logger",
    "fit",
    "lightning_loops",
    "logger_dir",
    "sample_count",
    "to_lightning_checkpoint",
    "top_operators_table",
]
