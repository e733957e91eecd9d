"""Lightning integration: the only place trainforge imports ``lightning``."""

from trainforge.lightning._datamodule import UniversalDataModule
from trainforge.lightning._loggers import LOGGERS, create_logger, logger_dir

__all__ = ["LOGGERS", "UniversalDataModule", "create_logger", "logger_dir"]
