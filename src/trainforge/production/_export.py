"""Export bundles: a trained model, checked in every format, in a folder that serves it.

A bundle is built in a temporary folder next to its destination and renamed into place
only when every file is written and hashed, so a failed or killed export never leaves a
half bundle where a good one is expected::

    bundle/
      artifacts/model.onnx, model.torchscript.pt, model.pytorch.pt
      model_code/<module>.py          the model class's source (pytorch format)
      configs/task_spec.json, training_config.json, torchserve_config.json
      inference.py                    standalone: numpy + onnxruntime or torch
      README.md, Dockerfile, requirements.txt
      manifest.json                   SHA256 of every file, source, check results

Each artifact is checked against the eager model before the bundle is declared done
(see :mod:`trainforge.production._export_formats`); a format that fails is reported with
its reason in the manifest and left out, and the others ship.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainforge._version import __version__
from trainforge.engine import TaskSpec
from trainforge.errors import BundleExistsError, ExportError, did_you_mean
from trainforge.production import _bundle_files as files
from trainforge.production._export_formats import (
    FORMATS,
    MODEL_CODE_DIR,
    CheckInputs,
    FormatResult,
    ModelRecipe,
    export_format,
)
from trainforge.records import ConfigRecord, ConfigSource

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "ExportBundle",
    "check_formats",
    "create_export_bundle",
    "example_inputs",
    "read_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3


@dataclass(frozen=True)
class ExportBundle:
    """A written bundle: where it is and what its manifest says."""

    path: Path
    manifest: dict[str, Any]

    @property
    def shipped(self) -> list[str]:
        """Formats in the bundle (checked and written)."""
        return [n for n, f in self.manifest["formats"].items() if f["status"] == "ok"]

    @property
    def failed(self) -> dict[str, str]:
        """Formats left out, with the reason."""
        return {n: f["reason"] for n, f in self.manifest["formats"].items() if f["status"] != "ok"}

    @property
    def size_mb(self) -> float:
        """Size of every file of the bundle, in MB."""
        return sum(f["size"] for f in self.manifest["files"].values()) / 1e6


def check_formats(formats: str | Sequence[str]) -> list[str]:
    """Format names, validated and de-duplicated (``"onnx,torchscript"`` is split).

    Raises:
        ExportError: An unknown format (with "did you mean"), or none at all.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise ExportError("no export format given", hint=f"choose from {', '.join(FORMATS)}")
    for name in names:
        if name not in FORMATS:
            guess = did_you_mean(name, FORMATS)
            raise ExportError(
                f"unknown export format {name!r}" + (f"; did you mean {guess!r}?" if guess else ""),
                key="export.formats",
                hint=f"choose from {', '.join(FORMATS)}",
            )
    return list(dict.fromkeys(names))


def _check_inputs(model: nn.Module, spec: TaskSpec, sample: torch.Tensor) -> CheckInputs:
    """The trace example and the checks: two batch sizes, and two lengths for text."""
    if sample.ndim == 0 or len(sample) == 0:
        raise ExportError("sample_inputs must be a batch of at least one item")
    if len(sample) < 3:  # a batch of one would be baked into the graph as a constant
        sample = sample.repeat(3, *([1] * (sample.ndim - 1)))
    dynamic = {0: "batch"}
    checks = [sample[:1], sample]
    max_sizes: dict[int, int] = {}
    if spec.modality == "text" and sample.ndim >= 2:
        dynamic[1] = "sequence"
        length = sample.shape[1]
        if spec.max_seq_len:
            max_sizes[1] = spec.max_seq_len
        if length >= 4:
            checks.append(sample[:, : length // 2])
    return CheckInputs(sample[:2], checks, dynamic, max_sizes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_table(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(root).as_posix(): {"sha256": _sha256(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST and "__pycache__" not in path.parts
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def create_export_bundle(
    model: nn.Module,
    config: ModelRecipe | Mapping[str, Any],
    task_spec: TaskSpec,
    training_config: ConfigSource | None,
    formats: str | Sequence[str],
    output_dir: str | Path,
    sample_inputs: torch.Tensor | Any = None,
    *,
    overwrite: bool = False,
    source: Mapping[str, Any] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> Path:
    """Export ``model`` in ``formats``, check each against PyTorch, and write a bundle.

    Args:
        model: The trained network (called as ``model(inputs)``, returning a tensor).
        config: How to rebuild the model: a :class:`ModelRecipe`, or a mapping with
            ``import_path`` (``"pkg.module:Class"``) and ``kwargs``.
        task_spec: The task: input kind, classes, pre- and post-processing.
        training_config: The run's config with provenance (``configs/training_config.json``).
        formats: ``onnx``, ``torchscript``, ``pytorch`` (a list or ``"onnx,pytorch"``).
        output_dir: The bundle folder to create.
        sample_inputs: What the artifacts are checked on: a batch (batch first), or a
            dataset (its first items' ``inputs``, e.g. the task's validation set);
            random inputs of the task's shape when None.
        overwrite: Replace an existing ``output_dir``.
        source: Where the weights came from (``checkpoint``, ``run_id``, ...), recorded.
        atol: Absolute tolerance of the checks.
        rtol: Tolerance relative to the largest PyTorch output magnitude.

    Returns:
        The bundle folder.

    Raises:
        ExportError: An unknown format, bad sample inputs, or no format exported (the
            reasons of each; nothing is left on disk).
        BundleExistsError: ``output_dir`` exists and ``overwrite`` is False.

    Examples:
        >>> import torch
        >>> from trainforge.zoo import MLP, get_task_spec
        >>> spec = get_task_spec("digits")
        >>> recipe = {"import_path": "trainforge.zoo._mlp:MLP",
        ...           "kwargs": {"input_dim": 64, "num_classes": 10}}
        >>> model = MLP(64, 10)
        >>> create_export_bundle(model, recipe, spec, None, "onnx", "out",
        ...                      sample_inputs=torch.rand(8, 64) * 16)
        PosixPath('out')
    """
    names = check_formats(formats)
    recipe = config if isinstance(config, ModelRecipe) else ModelRecipe(**dict(config))
    destination = Path(output_dir)
    if destination.exists() and not overwrite:
        raise BundleExistsError(
            f"export folder {destination} already exists",
            path=destination,
            hint="pass --overwrite (overwrite=True) to replace it, or choose another --output",
        )
    sample = _as_batch(sample_inputs) if sample_inputs is not None else example_inputs(task_spec)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    try:
        model.eval().cpu()
        return _build_bundle(
            model, recipe, task_spec, training_config, names, destination, sample, source,
            atol=atol, rtol=rtol,
        )  # fmt: skip
    finally:  # the caller's model as it was given
        model.to(device).train(was_training)


def _build_bundle(
    model: nn.Module,
    recipe: ModelRecipe,
    task_spec: TaskSpec,
    training_config: ConfigSource | None,
    names: list[str],
    destination: Path,
    sample: torch.Tensor,
    source: Mapping[str, Any] | None,
    *,
    atol: float,
    rtol: float,
) -> Path:
    inputs = _check_inputs(model, task_spec, sample.cpu())
    with torch.no_grad():
        expected = [model(x) for x in inputs.checks]
    if not all(isinstance(e, torch.Tensor) for e in expected):
        kind = type(next(e for e in expected if not isinstance(e, torch.Tensor))).__name__
        raise ExportError(
            f"the model returns {kind}; an export bundle needs a model returning one tensor",
            hint="wrap the model in a module whose forward returns the output tensor",
        )
    work = files.work_folder(destination)
    try:
        (work / "artifacts").mkdir()
        (work / "configs").mkdir()
        results = [
            export_format(n, model, inputs, recipe, work, expected=expected, atol=atol, rtol=rtol)
            for n in names
        ]
        if not any(r.ok for r in results):
            reasons = "; ".join(f"{r.format}: {r.reason}" for r in results)
            raise ExportError(f"no format could be exported: {reasons}", path=destination)
        if not any(r.ok and r.format == "pytorch" for r in results):
            shutil.rmtree(work / MODEL_CODE_DIR, ignore_errors=True)
        shutil.rmtree(work / MODEL_CODE_DIR / "__pycache__", ignore_errors=True)
        manifest = _write_contents(work, task_spec, training_config, recipe, results, source)
        manifest["input"] = {
            "dtype": str(sample.dtype).removeprefix("torch."),
            "shape": [None if i in inputs.dynamic_dims else s for i, s in enumerate(sample.shape)],
        }
        manifest["tolerance"] = {"atol": atol, "rtol": rtol}
        manifest["files"] = _file_table(work)
        _write_json(work / MANIFEST, manifest)
        _publish(work, destination)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return destination


def _item_inputs(item: Any) -> Any:
    if isinstance(item, Mapping):
        return item["inputs"]
    return item[0] if isinstance(item, (tuple, list)) else item


def _as_batch(data: Any, count: int = 8) -> torch.Tensor:
    """A batch from a tensor, or the first items of a dataset (``item["inputs"]``, ``item[0]``)."""
    if isinstance(data, torch.Tensor):
        return data
    try:
        items = [data[i] for i in range(min(count, len(data)))]
        inputs = [_item_inputs(item) for item in items]
        return torch.stack(inputs)
    except (TypeError, KeyError, IndexError, RuntimeError) as exc:
        raise ExportError(
            f"sample_inputs must be a batch tensor or a dataset of items with 'inputs': {exc}",
            hint="pass a tensor whose first dimension is the batch",
        ) from None


def example_inputs(spec: TaskSpec, batch: int = 4) -> torch.Tensor:
    """Random inputs of the task's shape (when no validation data is at hand)."""
    generator = torch.Generator().manual_seed(0)
    if spec.modality == "text":
        if spec.vocab_size is None:
            raise ExportError(f"task {spec.name!r} has no vocab_size: pass sample_inputs")
        length = min(spec.max_seq_len or 16, 16)
        return torch.randint(1, spec.vocab_size, (batch, length), generator=generator)
    if spec.image_size is not None:
        height, width = spec.image_size
        return torch.rand(batch, spec.in_channels or 3, height, width, generator=generator)
    if spec.input_dim is not None:
        return torch.randn(batch, spec.input_dim, generator=generator)
    raise ExportError(
        f"task {spec.name!r} sets neither input_dim, image_size nor vocab_size",
        hint="pass sample_inputs (a batch of real inputs)",
    )


def _write_contents(
    work: Path,
    spec: TaskSpec,
    training_config: ConfigSource | None,
    recipe: ModelRecipe,
    results: list[FormatResult],
    source: Mapping[str, Any] | None,
) -> dict[str, Any]:
    shipped = [r.format for r in results if r.ok]
    record = ConfigRecord.optional(training_config)
    _write_json(work / "configs" / "task_spec.json", spec.to_dict())
    _write_json(work / "configs" / "training_config.json", record.plain() if record else None)
    _write_json(work / "configs" / "torchserve_config.json", files.torchserve_config(shipped))
    shutil.copyfile(Path(files.__file__).with_name("_bundle_inference.py"), work / "inference.py")
    (work / "requirements.txt").write_text(files.requirements(shipped), encoding="utf-8")
    (work / "Dockerfile").write_text(files.dockerfile(shipped), encoding="utf-8")
    manifest: dict[str, Any] = {
        "bundle_format_version": BUNDLE_FORMAT_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trainforge_version": __version__,
        "torch_version": torch.__version__,
        "task": spec.name,
        "task_type": spec.task_type,
        "model": {"import_path": recipe.import_path, "kwargs": recipe.kwargs},
        "source": dict(source or {}),
        "config_hash": record.hash if record else None,
        "formats": {r.format: r.to_dict() for r in results},
    }
    (work / "README.md").write_text(files.readme(manifest), encoding="utf-8")
    return manifest


def _publish(work: Path, destination: Path) -> None:
    """Rename the finished bundle into place (the old one, if any, goes only after)."""
    old = None
    if destination.exists():
        old = destination.with_name(f".replaced-{destination.name}-{os.getpid()}")
        destination.rename(old)
    try:
        work.rename(destination)
    except BaseException:
        if old is not None:
            old.rename(destination)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_bundle(path: str | Path) -> ExportBundle:
    """The bundle at ``path`` and its manifest.

    Raises:
        ExportError: No readable ``manifest.json`` there.
    """
    root = Path(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{root} is not an export bundle: {exc}", path=root) from None
    return ExportBundle(root, manifest)


def verify_bundle(path: str | Path) -> list[str]:
    """Problems of a bundle against its manifest (empty when every file matches).

    Checks every listed file's size and SHA256, and that no unlisted file was added.
    """
    root = Path(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{root / MANIFEST}: cannot read ({exc})"]
    problems = []
    listed = manifest.get("files", {})
    actual = _file_table(root)
    for name, entry in listed.items():
        found = actual.get(name)
        if found is None:
            problems.append(f"{name}: missing")
        elif found != entry:
            problems.append(f"{name}: sha256 {found['sha256']} != recorded {entry['sha256']}")
    problems += [f"{name}: not in the manifest" for name in sorted(set(actual) - set(listed))]
    return problems
