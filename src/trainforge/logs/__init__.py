"""Structured, quiet-by-default logging: configuration, section tables, provenance.

Library code logs through ``logging.getLogger(__name__)``; only the CLI prints.
"""

from trainforge.logs._config import (
    configure_logging,
    get_logger,
    rank_zero_only,
    set_process_label,
)
from trainforge.logs._progress import TrainingProgress, progress_drawn
from trainforge.logs._provenance import (
    PROVENANCE_LEGEND,
    Provenance,
    format_provenance,
    format_value,
    log_config_overview,
)
from trainforge.logs._tables import format_table, log_section

__all__ = [
    "PROVENANCE_LEGEND",
    "Provenance",
    "TrainingProgress",
    "configure_logging",
    "format_provenance",
    "format_table",
    "format_value",
    "get_logger",
    "log_config_overview",
    "log_section",
    "progress_drawn",
    "rank_zero_only",
    "set_process_label",
]
