"""Revision 0002: the job queue (jobs, schedules) and the job that produced each run.

Revision id: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trainforge.tracking._dialect import LONG_TEXT, Double, table_options

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``jobs``, ``schedules`` and ``runs.job_id``."""
    options = table_options(op.get_bind())  # MySQL: InnoDB, utf8mb4, binary collation
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_type", sa.String(50), nullable=False),
        sa.Column("config", LONG_TEXT),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(200)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("not_before", Double),
        sa.Column("heartbeat_at", Double),
        sa.Column("schedule_id", sa.Integer),
        sa.Column("scheduled_for", Double),
        sa.Column("error", LONG_TEXT),
        sa.Column("created_at", Double, nullable=False),
        sa.Column("started_at", Double),
        sa.Column("finished_at", Double),
        sa.UniqueConstraint("schedule_id", "scheduled_for", name="uq_jobs_schedule_slot"),
        **options,
    )
    op.create_index("ix_jobs_claim", "jobs", ["status", "priority", "created_at"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("job_type", sa.String(50), nullable=False),
        sa.Column("config", LONG_TEXT),
        sa.Column("schedule_expr", sa.String(100), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False),
        sa.Column("next_run_at", Double),
        sa.Column("last_run_at", Double),
        sa.Column("created_at", Double, nullable=False),
        **options,
    )
    # A plain ADD COLUMN (no foreign key) works on SQLite without a table rebuild.
    op.add_column("runs", sa.Column("job_id", sa.Integer))


def downgrade() -> None:
    """Remove the job queue."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("job_id")
    op.drop_table("schedules")
    op.drop_table("jobs")
