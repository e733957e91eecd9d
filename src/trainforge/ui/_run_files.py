"""What a run left on disk: its folder, command line, logger folders and checkpoints.

The tracking store does not hold the run folder itself; it is found from what the store
does hold, in this order: the checkpoint manifests the run logged as artifacts (absolute
paths ``<run folder>/checkpoints/<checkpoint>/manifest.json``), else the config's
``run.output_dir`` (resolved against the working directory the run recorded) joined with
the ``run-<id>`` folder name that training uses. Everything here only reads; verifying a
checkpoint hashes its files but never writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainforge.checkpoint import MANIFEST_NAME, read_manifest, verify_checkpoint
from trainforge.errors import CheckpointError

__all__ = ["checkpoints", "run_files", "run_folder"]

_POINTERS = ("best", "last")
_LOGGER_FOLDERS = ("csv", "tensorboard", "wandb", "mlflow", "comet", "profiler")
_COMMAND_FILE = "command.txt"
_MAX_COMMAND_BYTES = 64 * 1024


def run_folder(run: dict[str, Any]) -> Path | None:
    """The run's folder, or None when nothing the store holds points at an existing one."""
    for artifact in run.get("artifacts") or ():
        path = Path(artifact["path"])
        if (
            path.name == MANIFEST_NAME
            and len(path.parents) > 3
            and path.parents[1].name == "checkpoints"
        ):
            folder = path.parents[2]
            if folder.is_dir():
                return folder
    config = run.get("config") or {}
    output_dir = (config.get("run") or {}).get("output_dir") if isinstance(config, dict) else None
    if not isinstance(output_dir, str):
        return None
    base = Path(output_dir).expanduser()
    if not base.is_absolute():
        cwd = (run.get("system") or {}).get("cwd")
        if not isinstance(cwd, str):
            return None
        base = Path(cwd) / base
    folder = base / f"run-{int(run['run_id']):06d}"
    return folder if folder.is_dir() else None


def run_files(run: dict[str, Any]) -> dict[str, Any]:
    """Folder, command line, logger folders and checkpoints (unverified) of a run."""
    folder = run_folder(run)
    if folder is None:
        return {"folder": None, "command": None, "folders": [], "checkpoints": []}
    command_file = folder / _COMMAND_FILE
    command = None
    if command_file.is_file():
        with command_file.open("rb") as handle:
            command = handle.read(_MAX_COMMAND_BYTES).decode("utf-8", errors="replace").strip()
    folders = [
        {"kind": kind, "path": str(folder / kind)}
        for kind in _LOGGER_FOLDERS
        if (folder / kind).is_dir()
    ]
    return {
        "folder": str(folder),
        "command": command,
        "folders": folders,
        "checkpoints": checkpoints(folder / "checkpoints", recorded=_recorded(run)),
    }


def checkpoints(
    directory: Path, *, verify: bool = False, recorded: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Checkpoints of one manager directory, newest first; ``verify`` hashes every file.

    Each entry says whether its manifest still has the hash the tracker recorded when it
    was written (``recorded``: manifest path -> sha256), and with ``verify`` whether every
    payload file matches its manifest (size and SHA256).
    """
    if not directory.is_dir():
        return []
    pointers = {}
    for name in _POINTERS:
        pointer = directory / name
        if pointer.is_file():
            pointers[name] = pointer.read_text(encoding="utf-8").strip()
    found = []
    for path in sorted(directory.iterdir(), reverse=True):
        if not path.is_dir() or not (path / MANIFEST_NAME).is_file():
            continue
        entry: dict[str, Any] = {
            "name": path.name,
            "path": str(path),
            "flags": [name for name, target in pointers.items() if target == path.name],
        }
        try:
            manifest = read_manifest(path)
        except CheckpointError as exc:
            entry.update(ok=False, problem=exc.message)
            found.append(entry)
            continue
        meta = manifest.metadata
        entry.update(
            epoch=meta.get("epoch"),
            global_step=meta.get("global_step"),
            metrics=meta.get("metrics") or {},
            size_bytes=manifest.total_size,
            storage=manifest.storage,
            format_version=manifest.format_version,
        )
        expected = (recorded or {}).get(str(path / MANIFEST_NAME))
        if expected is not None:
            entry["manifest_matches_record"] = expected == manifest.raw_digest
        if verify:
            report = verify_checkpoint(path)
            entry.update(ok=report.ok, problem=report.problem, bad_file=report.bad_file)
        found.append(entry)
    return found


def _recorded(run: dict[str, Any]) -> dict[str, str]:
    return {a["path"]: a["sha256"] for a in run.get("artifacts") or ()}
