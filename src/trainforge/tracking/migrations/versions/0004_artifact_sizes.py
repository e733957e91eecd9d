"""Revision 0004: artifact sizes beyond 2 GiB.

``artifacts.size_bytes`` was a 32-bit ``INTEGER``, so PostgreSQL and MySQL refused the
row of any file of 2 GiB or more (a checkpoint of a billion float16 weights); it becomes
``BIGINT``. SQLite's ``INTEGER`` already holds 64-bit values: nothing changes there.

Revision id: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen ``artifacts.size_bytes`` to 64 bits."""
    _size_type(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    """Narrow ``artifacts.size_bytes`` back to 32 bits (fails if a size does not fit)."""
    _size_type(sa.BigInteger(), sa.Integer())


def _size_type(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # one INTEGER type of 64 bits; altering it would rebuild the table
    op.alter_column(
        "artifacts", "size_bytes", type_=new, existing_type=old, existing_nullable=False
    )
