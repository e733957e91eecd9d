"""Table definitions (SQLAlchemy Core) of the current schema revision, and on-disk names.

The Alembic revisions under ``migrations/versions`` create these tables; this module is what
the queries use. Every value is plain data (numbers, text, JSON text), never pickles.
Timestamps are seconds since the epoch (64-bit float), the same on every backend; text
columns hold any length (``LONG_TEXT``), see ``_dialect`` for what MySQL needs.

Metric history is append-only (``metrics``); ``metric_summaries`` keeps one row per
(run, key) with the last value, min, max and count, updated in the same transaction as the
history, so that search, ``best_run`` and ``compare_runs`` never scan the history.
``jobs`` and ``schedules`` hold the job queue (revision 2; results, trigger reasons,
schedule time zones and catch-up policies in revision 3).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from trainforge.tracking._dialect import LONG_TEXT, Double

__all__ = [
    "HEAD_REVISION",
    "MODEL_TAGS",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "VERSION_TABLE",
    "artifacts",
    "jobs",
    "metadata",
    "metric_summaries",
    "metrics",
    "model_label_history",
    "model_labels",
    "models",
    "run_params",
    "run_tags",
    "runs",
    "schedules",
]

#: Alembic's bookkeeping table, named so it never clashes with another application's.
VERSION_TABLE = "trainforge_alembic_version"
HEAD_REVISION = "0004"

RUN_STATUSES = ("running", "completed", "failed", "killed", "stale")
"""Every status a tracked run can have."""
TERMINAL_STATUSES = ("completed", "failed", "killed")
MODEL_TAGS = ("production", "staging", "experimental", "retired")
"""Lifecycle tags of a registered model; anything else is a user-defined alias."""

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), nullable=False),
    Column("experiment", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", LONG_TEXT),
    Column("config_hash", String(64)),
    Column("provenance", LONG_TEXT),
    Column("system", LONG_TEXT),
    Column("git_commit", String(64)),
    Column("host", String(200)),
    Column("notes", LONG_TEXT),
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("heartbeat_at", Double),
    Column("job_id", Integer),  # revision 2: the job that produced the run
    Index("ix_runs_project_experiment", "project", "experiment"),
    Index("ix_runs_job_id", "job_id"),
    Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", LONG_TEXT, nullable=False),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", LONG_TEXT, nullable=False),
    Column("value_num", Double),  # numeric params, so filters compare numbers as numbers
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", Integer, nullable=False),
    Column("epoch", Integer),
    Column("value", Double),  # NULL for NaN (no backend keeps NaN here)
    Column("timestamp", Double, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

metric_summaries = Table(
    "metric_summaries",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("last_value", Double),
    Column("last_step", Integer, nullable=False),
    Column("last_timestamp", Double, nullable=False),
    Column("min_value", Double),
    Column("max_value", Double),
    Column("count", Integer, nullable=False),
    Index("ix_metric_summaries_key_min", "key", "min_value"),
    Index("ix_metric_summaries_key_max", "key", "max_value"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", LONG_TEXT, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),  # revision 4: was 32-bit
    Column("created_at", Double, nullable=False),
    Index("ix_artifacts_run", "run_id"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("checkpoint_path", LONG_TEXT, nullable=False),
    Column("task_type", String(100)),
    Column("metrics", LONG_TEXT),
    Column("config_hash", String(64)),
    Column("training_run_id", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("parent_model_id", Integer, ForeignKey("models.id", ondelete="SET NULL")),
    Column("export_formats", LONG_TEXT),
    Column("model_size_mb", Double),
    Column("metadata", LONG_TEXT),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("name", "version", name="uq_models_name_version"),
)

# A tag or alias points at one version of a model name at a time: primary key (name, label).
model_labels = Table(
    "model_labels",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("label", String(200), primary_key=True),
    Column("kind", String(8), nullable=False),  # "tag" or "alias"
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_model_labels_model", "model_id"),
)

model_label_history = Table(
    "model_label_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("label", String(200), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("model_id", Integer),  # NULL: the label was removed from previous_model_id
    Column("previous_model_id", Integer),
    Column("changed_at", Double, nullable=False),
    Index("ix_model_label_history_name", "name", "label"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_type", String(50), nullable=False),
    Column("config", LONG_TEXT),
    Column("priority", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # queued/running/completed/failed/cancelled
    Column("worker_id", String(200)),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("not_before", Double),  # retry backoff: not claimable before this time
    Column("heartbeat_at", Double),
    Column("schedule_id", Integer),
    Column("scheduled_for", Double),  # with schedule_id: unique, so a schedule fires once
    Column("error", LONG_TEXT),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("result", LONG_TEXT),  # revision 3: JSON, what the job produced (run id, metrics)
    Column("reasons", LONG_TEXT),  # revision 3: JSON list, why a trigger submitted it
    Column("dedupe_key", String(200)),  # revision 3: unique, one job per trigger window
    Index("ix_jobs_claim", "status", "priority", "created_at"),
    Index("ux_jobs_dedupe_key", "dedupe_key", unique=True),
    UniqueConstraint("schedule_id", "scheduled_for", name="uq_jobs_schedule_slot"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("job_type", String(50), nullable=False),
    Column("config", LONG_TEXT),
    Column("schedule_expr", String(100), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("enabled", Integer, nullable=False),
    Column("next_run_at", Double),
    Column("last_run_at", Double),
    Column("created_at", Double, nullable=False),
    Column("timezone", String(64), nullable=False),  # revision 3: IANA name the cron reads in
    Column("catchup", String(8), nullable=False),  # revision 3: "latest" or "all" missed slots
)
