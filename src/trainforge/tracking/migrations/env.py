"""Alembic environment for the tracking store: runs on the connection the store hands in.

The store opens the transaction and takes the upgrade lock (``BEGIN IMMEDIATE`` on SQLite,
an advisory lock on PostgreSQL, a named lock on MySQL, whose DDL commits by itself)
before Alembic runs, so concurrent processes opening one new database apply
each migration exactly once.
"""

from __future__ import annotations

from alembic import context

from trainforge.tracking._schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
