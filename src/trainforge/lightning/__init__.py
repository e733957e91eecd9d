"""Lightning integration: the only place trainforge imports ``lightning``."""

from trainforge.lightning._datamodule import UniversalDataModule
from trainforge.lightning._loggers import LOGGERS, create_logger, logger_dir
from trainforge.lightning._module import HeatmapModule, TaskModule

__all__ = [
    "LOGGERS",
    "HeatmapModule",
    "TaskModule",
    "UniversalDataModule",
    "create_logger",
    "logger_dir",
]
