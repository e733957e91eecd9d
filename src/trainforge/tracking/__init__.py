"""Experiment tracking, model registry and (later) the job queue, in one SQL store.

SQLite (WAL) by default, PostgreSQL by URL; the schema is migrated with Alembic on open.
No torch import: the tracker and the ``runs``/``registry`` commands start fast.
"""

from trainforge.tracking._experiment_db import ExperimentDB
from trainforge.tracking._filter import parse_filter
from trainforge.tracking._registry import ModelRegistry
from trainforge.tracking._schema import MODEL_TAGS, RUN_STATUSES
from trainforge.tracking._store import TrackingStore
from trainforge.tracking._tracker import ExperimentTracker, system_info
from trainforge.tracking._url import DATABASE_ENV_VAR, display_url, resolve_database_url

__all__ = [
    "DATABASE_ENV_VAR",
    "MODEL_TAGS",
    "RUN_STATUSES",
    "ExperimentDB",
    "ExperimentTracker",
    "ModelRegistry",
    "TrackingStore",
    "display_url",
    "parse_filter",
    "resolve_database_url",
    "system_info",
]
