"""Export a trained run: from a run or a checkpoint to a checked serving bundle.

The composition root's side of export: it reads the config a checkpoint recorded,
rebuilds the model and loads the verified weights, takes sample inputs from the task's
validation data and hands everything to
:func:`trainforge.production.create_export_bundle`. ``trainforge export`` and
``export.bundle=true`` at the end of training both come through here.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge.checkpoint import locate_checkpoint, read_checkpoint
from trainforge.checkpoint._layout import LOCK_NAME
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._targets import resolve_checkpoint
from trainforge.config import TrainingConfig
from trainforge.engine import TaskSpec
from trainforge.errors import CheckpointNotFoundError, ExportError, RunNotFoundError
from trainforge.production import ExportBundle, ModelRecipe, create_export_bundle, read_bundle
from trainforge.tracking._run_folders import checkpoints_folder, run_folder
from trainforge.train import _build as build
from trainforge.train._weights import load_checkpoint_weights
from trainforge.zoo import CharVocab, model_recipe
from trainforge.zoo._imports import is_import_path, resolve_import_path

__all__ = ["export_checkpoint", "register_bundle", "resolve_export_target"]

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 8
"""Validation items the artifacts are checked on."""


def _run_checkpoints(run_dir: Path) -> Path:
    """The run's checkpoint directory: its best checkpoint, else its newest one."""
    directory = checkpoints_folder(run_dir)
    for pointer in ("best", "last"):
        if (directory / pointer).is_file():
            return locate_checkpoint(directory / pointer)
    raise CheckpointNotFoundError(
        f"run {run_dir} has no checkpoints (nothing in {directory})",
        path=directory,
        hint="train with checkpointing on (checkpoint.save_interval_epochs), or pass a "
        "checkpoint directory instead of the run",
    )


def resolve_export_target(
    target: str | Path, output_dir: str | Path = "outputs", store: Any = None
) -> Path:
    """The checkpoint directory ``target`` names: a run (id, name or folder) or a checkpoint.

    Args:
        target: A run id (``3``), a run folder name (``run-000003``) under ``output_dir``,
            a run folder, or anything :func:`resolve_checkpoint` takes.
        output_dir: Where run folders are (``run.output_dir``).
        store: The tracking store the run id is from: its run's folder is the one its
            checkpoints were recorded in (a folder named after another store's run 3 may
            hold ``run-000003``). None: the folder ``run-<id>`` under ``output_dir``.

    Raises:
        RunNotFoundError: No run or checkpoint by that name.
        CheckpointNotFoundError: The run has no checkpoints.
    """
    text = str(target)
    path = run_folder(text, Path(output_dir), store)
    if path is None:
        raise RunNotFoundError(
            f"{text!r} is neither a checkpoint, a run folder, nor a run in {output_dir}",
            path=Path(output_dir) / text,
            hint="pass a run id (see `trainforge runs list`), a run folder, or a "
            "checkpoint directory",
        )
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "manifest.json").exists():
        return _run_checkpoints(path)
    directory, name = resolve_checkpoint(path)
    return locate_checkpoint(directory / name)


def _sample_inputs(config: TrainingConfig, spec: TaskSpec, count: int) -> torch.Tensor:
    """The first ``count`` validation inputs (training inputs when there is no validation)."""
    train, val = build.build_datasets_for(config, spec)
    data = val if val is not None and len(val) else train
    items = [data[i]["inputs"] for i in range(min(count, len(data)))]
    return torch.stack(items)


def _serving_spec(config: TrainingConfig, spec: TaskSpec) -> TaskSpec:
    """The task spec a bundle ships: the built-in text vocabulary added for ``tiny_lm``."""
    vocab = CharVocab()
    builtin_text = config.data.name == "tiny_lm" and spec.vocab_size == len(vocab)
    if builtin_text and "vocab" not in spec.extra:
        data = spec.to_dict()
        data["extra"] = {**spec.extra, "vocab": ["", *vocab.chars]}
        return TaskSpec.from_dict(data)
    return spec


def _recipe(config: TrainingConfig, spec: TaskSpec) -> ModelRecipe:
    path, kwargs = model_recipe(config.model.name, spec, **config.model.kwargs)
    takes_spec = False
    if is_import_path(config.model.name):
        factory = resolve_import_path(config.model.name, kind="model")
        try:
            takes_spec = "task_spec" in inspect.signature(factory).parameters
        except (TypeError, ValueError):  # a builtin or C callable without a signature
            takes_spec = False
    return ModelRecipe(path, kwargs, takes_spec)


def _reader_of(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Registered as a reader of ``directory`` until its weights are loaded (retention waits).

    Only in a folder that checkpoints are saved to (it has the lock file); elsewhere
    nothing prunes, and a reader's files would be clutter.
    """
    if (directory.parent / LOCK_NAME).is_file():
        return CheckpointLocks(directory.parent).reading(directory.name)
    return contextlib.nullcontext()


def export_checkpoint(
    checkpoint: str | Path,
    *,
    formats: str | Sequence[str] | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    sample_size: int = SAMPLE_SIZE,
    model: nn.Module | None = None,
    sample_data: Any = None,
    job_id: int | None = None,
) -> ExportBundle:
    """Export one checkpoint directory as a bundle (formats from its config when None).

    The checkpoint is verified (every file's SHA256) before anything is loaded; the
    model is rebuilt from the config it recorded.

    Args:
        checkpoint: A checkpoint directory (see :func:`resolve_export_target`).
        formats: Formats to export; the checkpoint config's ``export.formats`` when None.
        output: The bundle folder; ``<run>/export/<checkpoint name>`` when None.
        overwrite: Replace an existing bundle folder.
        sample_size: Validation items the artifacts are checked on.
        model: The trained model object when it was not built from the config (its
            copy gets the checkpoint's weights; the PyTorch format then records its
            class without constructor kwargs).
        sample_data: The data the run used (a dataset or DataLoader), when it was not
            built from the config: the artifacts are checked on its first items.
        job_id: The job this export is an attempt of (recorded in the manifest's
            ``source``). A bundle at ``output`` that an earlier attempt of the same job
            wrote is replaced as with ``overwrite``: a retried job finishes its own work.

    Raises:
        CheckpointCorruptedError: The checkpoint fails verification.
        CheckpointError: Its weights do not fit the model (rebuilt from its config, or
            ``model``).
        ExportError: An unknown format, or no format could be exported.
        BundleExistsError: ``output`` exists, ``overwrite`` is False and no earlier
            attempt of job ``job_id`` wrote it.
    """
    directory = Path(checkpoint)
    with _reader_of(directory):
        manifest, state = read_checkpoint(directory, verify=True, map_location="cpu")
        meta = manifest.metadata
        if not meta.get("config"):
            raise CheckpointNotFoundError(
                f"checkpoint {directory} recorded no training config: the model cannot be rebuilt",
                path=directory,
                hint="export from Python with create_export_bundle(model, ...) instead",
            )
        config = build.recorded_config(meta["config"], meta.get("config_provenance"), directory)
        spec = build.task_spec_from_config(config)
        given = model is not None
        if model is None:
            model, recipe = build.build_model_for(config, spec), _recipe(config, spec)
        else:
            model = copy.deepcopy(model)
            cls = type(model)
            recipe = ModelRecipe(f"{cls.__module__}:{cls.__qualname__}")
        load_checkpoint_weights(
            model, state["model_state_dict"], directory, config=config, given=given
        )
    if sample_data is None:
        sample: Any = _sample_inputs(config, spec, sample_size)
    else:  # a DataLoader's dataset; a stream is not read: the task's shape is used
        dataset = getattr(sample_data, "dataset", sample_data)
        readable = hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
        sample = dataset if readable else None
    run_dir = directory.parent.parent if directory.parent.name == "checkpoints" else None
    if output is None:
        base = run_dir if run_dir is not None else directory.parent
        output = base / "export" / directory.name
    if not overwrite and job_id is not None and _written_by_job(Path(output), job_id):
        logger.info("export: replacing %s, written by an earlier attempt of job %d", output, job_id)
        overwrite = True
    source: dict[str, Any] = {
        "checkpoint": str(directory.resolve()),
        "run": run_dir.name if run_dir is not None else None,
        "epoch": meta.get("epoch"),
        "global_step": meta.get("global_step"),
        "metrics": meta.get("metrics"),
        "job_id": job_id,
    }
    path = create_export_bundle(
        model,
        recipe,
        _serving_spec(config, spec),
        config,
        formats if formats is not None else config.export.formats,
        output,
        sample,
        overwrite=overwrite,
        source=source,
    )
    bundle = read_bundle(path)
    for name, reason in bundle.failed.items():
        logger.warning("export: %s left out: %s", name, reason)
    return bundle


def _written_by_job(output: Path, job_id: int) -> bool:
    """True when ``output`` is a bundle whose manifest names job ``job_id`` as its source."""
    try:
        manifest = read_bundle(output).manifest
    except ExportError:
        return False  # no bundle there: not one this job can claim
    source = manifest.get("source") if isinstance(manifest, dict) else None
    return isinstance(source, dict) and source.get("job_id") == job_id


def register_bundle(bundle: ExportBundle, name: str, database: Any) -> int:
    """Register ``bundle`` as a new version of model ``name``; return the model id.

    The version records the bundle folder, its formats, size and check results, and
    links the training run when the store knows it. A bundle written by a job that an
    earlier attempt of the job already registered keeps that version (its id is
    returned): a retry does not add a second one.
    """
    from trainforge.tracking import ExperimentDB, ModelRegistry

    manifest = bundle.manifest
    source = manifest.get("source", {})
    path = str(bundle.path.resolve())
    job_id = source.get("job_id")
    registry = ModelRegistry(database)
    if job_id is not None:
        for version in registry.list_models(name):
            meta = version.get("metadata") or {}
            if meta.get("bundle") == path and meta.get("job_id") == job_id:
                logger.info("export: job %d registered %s as model %d", job_id, path, version["id"])
                return int(version["id"])
    run = source.get("run") or ""
    run_id = None
    if run.startswith("run-") and run[4:10].isdigit():
        try:
            ExperimentDB(database).get_run(int(run[4:10]))
            run_id = int(run[4:10])
        except RunNotFoundError:  # a run tracked in another store: the folder is recorded
            logger.info("run %s is not in this tracking store; registering without it", run)
    checks = {
        fmt: {k: result[k] for k in ("status", "max_abs_diff", "max_rel_diff", "reason")}
        for fmt, result in manifest["formats"].items()
    }
    return registry.register_model(
        name,
        checkpoint_path=path,
        task_type=manifest["task_type"],
        metrics={
            k: float(v)
            for k, v in (source.get("metrics") or {}).items()
            if isinstance(v, (int, float))
        },
        config_hash=manifest.get("config_hash"),
        training_run_id=run_id,
        export_formats=bundle.shipped,
        model_size_mb=round(bundle.size_mb, 3),
        metadata={
            "bundle": path,
            "source_checkpoint": source.get("checkpoint"),
            "checks": checks,
            "job_id": job_id,
        },
    )
