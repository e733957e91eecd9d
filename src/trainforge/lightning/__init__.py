"""Lightning integration: the only place trainforge imports ``lightning``."""

from trainforge.lightning._loggers import LOGGERS, create_logger, logger_dir

__all__ = ["LOGGERS", "create_logger", "logger_dir"]
