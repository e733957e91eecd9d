"""Revision 0003: what a job produced and why it was submitted; schedule time zones.

Adds ``jobs.result`` (JSON: the run it produced, its metrics), ``jobs.reasons`` (JSON: why a
trigger submitted it), ``jobs.dedupe_key`` (unique: one job per trigger window),
``schedules.timezone`` and ``schedules.catchup`` (which missed slots to enqueue), and an
index on ``runs.job_id``.

Revision id: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trainforge.tracking._dialect import LONG_TEXT

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the job result columns, schedule time zones and catch-up policies."""
    # plain ADD COLUMNs (a unique index, not a unique column): no table rebuild on SQLite
    op.add_column("jobs", sa.Column("result", LONG_TEXT))
    op.add_column("jobs", sa.Column("reasons", LONG_TEXT))
    op.add_column("jobs", sa.Column("dedupe_key", sa.String(200)))
    op.create_index("ux_jobs_dedupe_key", "jobs", ["dedupe_key"], unique=True)
    op.add_column(
        "schedules",
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    )
    op.add_column(
        "schedules",
        sa.Column("catchup", sa.String(8), nullable=False, server_default="latest"),
    )
    op.create_index("ix_runs_job_id", "runs", ["job_id"])


def downgrade() -> None:
    """Remove what revision 0003 added."""
    op.drop_index("ix_runs_job_id", table_name="runs")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("catchup")
        batch.drop_column("timezone")
    op.drop_index("ux_jobs_dedupe_key", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dedupe_key")
        batch.drop_column("reasons")
        batch.drop_column("result")
