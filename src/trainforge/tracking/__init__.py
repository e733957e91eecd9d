"""Experiment tracking, model registry and (later) the job queue, in one SQL store.

SQLite (WAL) by default, PostgreSQL or MySQL/MariaDB by URL; the schema is migrated with
Alembic on open.
No torch import: the tracker and the ``runs``/``registry`` commands start fast.
"""

from trainforge.tracking._experiment_db import ExperimentDB
from trainforge.tracking._filter import parse_filter
from trainforge.tracking._registry import REFERENCE_PROFILE_FILE, ModelRegistry
from trainforge.tracking._run_folders import recorded_run_folder
from trainforge.tracking._run_pages import RunPage, column_keys, page_runs
from trainforge.tracking._schema import MODEL_TAGS, RUN_STATUSES
from trainforge.tracking._series import (
    X_AXES,
    SeriesWindow,
    metric_points,
    metric_series,
    series_heads,
)
from trainforge.tracking._store import TrackingStore
from trainforge.tracking._tracker import ExperimentTracker, system_info
from trainforge.tracking._url import DATABASE_ENV_VAR, display_url, resolve_database_url

__all__ = [
    "DATABASE_ENV_VAR",
    "MODEL_TAGS",
    "REFERENCE_PROFILE_FILE",
    "RUN_STATUSES",
    "X_AXES",
    "ExperimentDB",
    "ExperimentTracker",
    "ModelRegistry",
    "RunPage",
    "SeriesWindow",
    "TrackingStore",
    "column_keys",
    "display_url",
    "metric_points",
    "metric_series",
    "page_runs",
    "parse_filter",
    "recorded_run_folder",
    "resolve_database_url",
    "series_heads",
    "system_info",
]
