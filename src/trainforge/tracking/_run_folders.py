"""Where a tracked run's folder is, and where in it its checkpoints are.

A run id belongs to one store; run folders are named ``run-<id>`` unless that name is
taken (by another store's run, or a deleted store's), when they get a suffix. So the
store, not the folder name, says which folder is run 3's: the folder of the checkpoints
it recorded. No torch import: an export job's submit reads these.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.engine import Connection

from trainforge.tracking._limits import valid_id
from trainforge.tracking._schema import artifacts
from trainforge.tracking._store import TrackingStore

__all__ = ["checkpoints_folder", "recorded_run_folder", "run_folder"]


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


def run_folder(text: str, runs_dir: Path, store: TrackingStore | None = None) -> Path | None:
    """The path ``text`` names: itself, or a run (id or folder name) in ``runs_dir``.

    A run id is the store's run, in the folder its checkpoints were recorded in, where
    ``store`` is given and recorded one; else the folder ``run-<id>`` in ``runs_dir``.
    None when nothing is there.
    """
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text.isdigit() and store is not None:
        recorded = recorded_run_folder(store, int(text))
        if recorded is not None and recorded.exists():
            return recorded
    name = f"run-{int(text):06d}" if text.isdigit() else text
    candidate = runs_dir / name
    return candidate if name and candidate.is_dir() else None


def checkpoints_folder(run_dir: Path) -> Path:
    """Where a run folder's checkpoints are: its config's ``checkpoint.dirpath``, else
    ``<run>/checkpoints``.

    The run's ``config.yaml`` is read, not validated: a config that a newer version
    refuses must still lead to its checkpoints (whose own recorded config then gets the
    error, naming the checkpoint).
    """
    config_file = run_dir / "config.yaml"
    dirpath = None
    if config_file.is_file():
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        values = raw.get("config", raw) if isinstance(raw, dict) else {}
        section = values.get("checkpoint") if isinstance(values, dict) else None
        dirpath = section.get("dirpath") if isinstance(section, dict) else None
    return Path(dirpath) if dirpath else run_dir / "checkpoints"
