"""The ``export`` job type: ``trainforge export`` run by a worker, in a child process.

The export itself (rebuilding the model, writing and checking every artifact) imports
torch, ONNX and the model's code, so it runs in a child process started exactly like
``trainforge export``: a crash ends only the job. What can be checked without loading
anything is checked at submit: the config's fields, that the checkpoint or run exists
and has checkpoints, the formats, and that the bundle folder is free.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainforge.errors import (
    BundleExistsError,
    CheckpointNotFoundError,
    ConfigError,
    ExportError,
    StoreUnavailableError,
    did_you_mean,
)
from trainforge.jobs._child import JobContext, run_child
from trainforge.tracking import TrackingStore
from trainforge.tracking._run_folders import checkpoints_folder, run_folder

__all__ = ["ExportJob"]

_FIELDS = ("checkpoint", "formats", "output", "overwrite", "register", "runs_dir")
_HINT = "give {'checkpoint': RUN_OR_CHECKPOINT, 'formats': ['onnx'], 'register': NAME}"


class ExportJob:
    """``export``: a run's best checkpoint (or any checkpoint) -> a checked serving bundle.

    Config: ``{"checkpoint": RUN_OR_CHECKPOINT}`` (a run id, a run folder, or a checkpoint
    directory or its ``best`` / ``last`` pointer, as for ``trainforge export``), and
    optionally ``formats`` (a list or ``"onnx,torchscript"``; default: the run's
    ``export.formats``), ``output`` (the bundle folder), ``overwrite``, ``register`` (a
    model name: the bundle is registered in the queue's store) and ``runs_dir`` (where a
    run id is looked up; ``outputs``). The result holds the bundle's path and formats.
    """

    def validate(self, config: Mapping[str, Any], *, store_url: str) -> dict[str, Any]:
        """Check the fields, the checkpoint, the formats and the bundle folder."""
        unknown = sorted(set(config) - set(_FIELDS))
        if unknown:
            guess = did_you_mean(unknown[0], _FIELDS)
            raise ConfigError(
                f"export job: unknown field(s) {', '.join(unknown)}"
                + (f"; did you mean {guess!r}?" if guess else ""),
                hint=_HINT,
            )
        if not config.get("checkpoint"):
            raise ConfigError("export job: 'checkpoint' is required", hint=_HINT)
        runs_dir = Path(str(config.get("runs_dir") or "outputs")).expanduser().resolve()
        target = _target(str(config["checkpoint"]), runs_dir, store_url)
        values: dict[str, Any] = {"checkpoint": str(target)}
        if config.get("formats") is not None:
            values["formats"] = _formats(config["formats"])
        overwrite = config.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise ConfigError(f"export job: 'overwrite' must be true or false, got {overwrite!r}")
        values["overwrite"] = overwrite
        if config.get("output"):
            output = Path(str(config["output"])).expanduser().resolve()
            if output.exists() and not overwrite:
                raise BundleExistsError(
                    f"export job: the bundle folder {output} exists",
                    path=output,
                    hint="choose another 'output' or set 'overwrite': true",
                )
            values["output"] = str(output)
        register = config.get("register")
        if register is not None:
            if not isinstance(register, str) or not register.strip():
                raise ConfigError(f"export job: 'register' must be a model name, got {register!r}")
            values["register"] = register.strip()
            values["database"] = store_url
        return values

    def run(self, config: Mapping[str, Any], context: JobContext) -> Mapping[str, Any] | None:
        """Run ``trainforge export`` in a child process; return the bundle's path and formats."""
        target = Path(config["checkpoint"])
        # the child's output: in the run folder's jobs/, else next to the checkpoint
        base = target / "jobs" if (target / "config.yaml").is_file() else target.parent
        job_dir = base / f"export-job-{context.job_id:06d}"
        job_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "trainforge.cli", "export", str(target), "--json"]
        if config.get("formats"):
            argv += ["--format", ",".join(config["formats"])]
        if config.get("output"):
            argv += ["--output", str(config["output"])]
        if config.get("overwrite"):
            argv.append("--overwrite")
        if config.get("register"):
            argv += ["--register", str(config["register"]), "--db", str(config["database"])]
        printed = job_dir / f"attempt-{context.attempt}.json"
        log_file = job_dir / f"attempt-{context.attempt}.log"
        run_child(argv, context, log_file, what="export", stdout_file=printed)
        manifest = json.loads(printed.read_text(encoding="utf-8"))
        formats = manifest.get("formats", {})
        return {
            "bundle": manifest["path"],
            "formats": [name for name, r in formats.items() if r.get("status") == "ok"],
            "left_out": {n: r.get("reason") for n, r in formats.items() if r.get("status") != "ok"},
            "checkpoint": manifest.get("source", {}).get("checkpoint"),
            "model_id": manifest.get("model_id"),
            "log": str(log_file),
        }


def _target(text: str, runs_dir: Path, store_url: str) -> Path:
    """The checkpoint or run folder ``text`` names, made absolute; it must hold checkpoints.

    A run id is the store's run where the store recorded its checkpoints (as ``trainforge
    export`` reads it), else the folder ``run-<id>`` in ``runs_dir``.
    """
    store = None
    if text.isdigit() and not Path(text).exists():
        with contextlib.suppress(StoreUnavailableError):
            store = TrackingStore(store_url, create=False)
    try:
        path = run_folder(text, runs_dir, store)
    finally:
        if store is not None:
            store.dispose()  # a submit opens it once: no pool left behind
    if path is None:
        name = f"run-{int(text):06d}" if text.isdigit() else text
        raise CheckpointNotFoundError(
            f"export job: no checkpoint or run at {text!r} (nor a run {name!r} in {runs_dir})",
            path=Path(text).expanduser(),
            hint="give a run id (see `trainforge runs list`), a run folder, or a "
            "checkpoint directory; set 'runs_dir' when runs are not in ./outputs",
        )
    path = path.resolve()
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "manifest.json").exists():
        _check_run_has_checkpoints(path)
    return path


def _check_run_has_checkpoints(run_dir: Path) -> None:
    """A run folder must have a ``best`` or ``last`` checkpoint to export."""
    directory = checkpoints_folder(run_dir)
    if not any((directory / pointer).is_file() for pointer in ("best", "last")):
        raise CheckpointNotFoundError(
            f"export job: run {run_dir} has no checkpoints (nothing in {directory})",
            path=directory,
            hint="train with checkpointing on (checkpoint.save_interval_epochs), or give a "
            "checkpoint directory instead of the run",
        )


def _formats(value: Any) -> list[str]:
    """Format names from a list or a comma-separated string, each one known."""
    from trainforge.config import EXPORT_FORMATS

    if isinstance(value, str):
        names = value.split(",")
    elif isinstance(value, list | tuple):
        names = [str(v) for v in value]
    else:
        raise ConfigError(f"export job: 'formats' must be a list of names, got {value!r}")
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise ExportError("export job: no export format given", hint=_choose())
    for name in names:
        if name not in EXPORT_FORMATS:
            guess = did_you_mean(name, EXPORT_FORMATS)
            raise ExportError(
                f"export job: unknown export format {name!r}"
                + (f"; did you mean {guess!r}?" if guess else ""),
                hint=_choose(),
            )
    return list(dict.fromkeys(names))


def _choose() -> str:
    from trainforge.config import EXPORT_FORMATS

    return f"choose from {', '.join(EXPORT_FORMATS)}"
