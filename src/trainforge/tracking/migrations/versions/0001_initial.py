"""Revision 0001: runs, tags, params, metric history and summaries, artifacts, model registry.

Revision id: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first schema."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.Text),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("provenance", sa.Text),
        sa.Column("system", sa.Text),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("host", sa.String(200)),
        sa.Column("notes", sa.Text),
        sa.Column("start_time", sa.Float, nullable=False),
        sa.Column("end_time", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
    )
    op.create_index("ix_runs_project_experiment", "runs", ["project", "experiment"])
    op.create_index("ix_runs_status_heartbeat", "runs", ["status", "heartbeat_at"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("value_num", sa.Float),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("value", sa.Float),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(250)),
        sa.Column("last_value", sa.Float),
        sa.Column("last_step", sa.Integer, nullable=False),
        sa.Column("last_timestamp", sa.Float, nullable=False),
        sa.Column("min_value", sa.Float),
        sa.Column("max_value", sa.Float),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("ix_metric_summaries_key_min", "metric_summaries", ["key", "min_value"])
    op.create_index("ix_metric_summaries_key_max", "metric_summaries", ["key", "max_value"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_artifacts_run", "artifacts", ["run_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("checkpoint_path", sa.Text, nullable=False),
        sa.Column("task_type", sa.String(100)),
        sa.Column("metrics", sa.Text),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("training_run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("parent_model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="SET NULL")),
        sa.Column("export_formats", sa.Text),
        sa.Column("model_size_mb", sa.Float),
        sa.Column("metadata", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
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
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", "label"),
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
        sa.Column("changed_at", sa.Float, nullable=False),
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
