"""Revision 0001: runs, tags, params, metric history and summaries, artifacts, model registry.

Revision id: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trainforge.tracking._dialect import LONG_TEXT, Double, table_options

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first schema."""
    options = table_options(op.get_bind())  # MySQL: InnoDB, utf8mb4, binary collation
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", LONG_TEXT),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("provenance", LONG_TEXT),
        sa.Column("system", LONG_TEXT),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("host", sa.String(200)),
        sa.Column("notes", LONG_TEXT),
        sa.Column("start_time", Double, nullable=False),
        sa.Column("end_time", Double),
        sa.Column("heartbeat_at", Double),
        **options,
    )
    op.create_index("ix_runs_project_experiment", "runs", ["project", "experiment"])
    op.create_index("ix_runs_status_heartbeat", "runs", ["status", "heartbeat_at"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("value", LONG_TEXT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
        **options,
    )
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("value", LONG_TEXT, nullable=False),
        sa.Column("value_num", Double),
        sa.PrimaryKeyConstraint("run_id", "key"),
        **options,
    )
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("value", Double),
        sa.Column("timestamp", Double, nullable=False),
        **options,
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("last_value", Double),
        sa.Column("last_step", sa.Integer, nullable=False),
        sa.Column("last_timestamp", Double, nullable=False),
        sa.Column("min_value", Double),
        sa.Column("max_value", Double),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
        **options,
    )
    op.create_index("ix_metric_summaries_key_min", "metric_summaries", ["key", "min_value"])
    op.create_index("ix_metric_summaries_key_max", "metric_summaries", ["key", "max_value"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("path", LONG_TEXT, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", Double, nullable=False),
        **options,
    )
    op.create_index("ix_artifacts_run", "artifacts", ["run_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("checkpoint_path", LONG_TEXT, nullable=False),
        sa.Column("task_type", sa.String(100)),
        sa.Column("metrics", LONG_TEXT),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("training_run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("parent_model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="SET NULL")),
        sa.Column("export_formats", LONG_TEXT),
        sa.Column("model_size_mb", Double),
        sa.Column("metadata", LONG_TEXT),
        sa.Column("created_at", Double, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
        **options,
    )
    op.create_table(
        "model_labels",
        sa.Column("name", sa.String(200)),
        sa.Column("label", sa.String(200)),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("updated_at", Double, nullable=False),
        sa.PrimaryKeyConstraint("name", "label"),
        **options,
    )
    op.create_index("ix_model_labels_model", "model_labels", ["model_id"])
    op.create_table(
        "model_label_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("model_id", sa.Integer),
        sa.Column("previous_model_id", sa.Integer),
        sa.Column("changed_at", Double, nullable=False),
        **options,
    )
    op.create_index("ix_model_label_history_name", "model_label_history", ["name", "label"])


def downgrade() -> None:
    """Drop the first schema."""
    for table in (
        "model_label_history",
        "model_labels",
        "models",
        "artifacts",
        "metric_summaries",
        "metrics",
        "run_params",
        "run_tags",
        "runs",
    ):
        op.drop_table(table)
