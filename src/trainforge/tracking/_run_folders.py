"""Where a tracked run's folder is: the folder of the checkpoints it recorded.

A run id belongs to one store; run folders are named ``run-<id>`` unless that name is
taken (by another store's run, or a deleted store's), when they get a suffix. So the
store, not the folder name, says which folder is run 3's.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from trainforge.tracking._limits import valid_id
from trainforge.tracking._schema import artifacts
from trainforge.tracking._store import TrackingStore

__all__ = ["recorded_run_folder"]


def recorded_run_folder(store: TrackingStore, run_id: int) -> Path | None:
    """The folder run ``run_id`` saved checkpoints in (None: no such run, or none recorded)."""
    if not valid_id(run_id):  # an id no row can have is not sent (SQLite overflows on it)
        return None

    def read(conn: Connection) -> list[str]:
        query = select(artifacts.c.path).where(artifacts.c.run_id == int(run_id))
        return [row.path for row in conn.execute(query.order_by(artifacts.c.id))]

    for text in store.read(read):
        manifest = Path(text)  # <run>/checkpoints/<checkpoint>/manifest.json
        if manifest.name == "manifest.json" and manifest.parent.parent.name == "checkpoints":
            return manifest.parent.parent.parent
    return None
