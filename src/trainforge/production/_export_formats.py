"""Artifact formats of an export bundle: how each is written, read back and checked.

Every format is checked the same way before a bundle ships it: the artifact is loaded
back the way ``inference.py`` loads it, run on sample inputs at two batch sizes (and two
sequence lengths for text), and compared with the eager PyTorch model. A format that
cannot be written or fails the comparison is reported with its reason; the others ship.
"""

from __future__ import annotations

import ast
import inspect
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

__all__ = [
    "FORMATS",
    "ArtifactFormat",
    "CheckInputs",
    "FormatCheck",
    "FormatResult",
    "ModelRecipe",
    "export_format",
]

Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelRecipe:
    """How to rebuild the model without trainforge: a class import path and its kwargs.

    Attributes:
        import_path: ``"pkg.module:Class"``.
        kwargs: Constructor keyword arguments (plain, JSON-compatible data).
        takes_task_spec: The constructor also takes ``task_spec`` (passed as the bundle's
            ``task_spec.json`` read into a namespace).
    """

    import_path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    takes_task_spec: bool = False


@dataclass(frozen=True)
class CheckInputs:
    """Inputs a format is traced with and checked on.

    Attributes:
        trace: The example the artifact is traced / exported with (batch of at least 2).
        checks: Inputs of different batch sizes (and sequence lengths) to compare on.
        dynamic_dims: Input dimensions that vary: ``{0: "batch", 1: "sequence"}``.
        max_sizes: Largest size of a dynamic dimension, where the model has one.
    """

    trace: torch.Tensor
    checks: list[torch.Tensor]
    dynamic_dims: dict[int, str]
    max_sizes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FormatCheck:
    """One comparison of an artifact with the eager model, on inputs of ``shape``."""

    shape: list[int]
    max_abs_diff: float
    max_rel_diff: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the manifest)."""
        return {
            "input_shape": self.shape,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "passed": self.passed,
        }


@dataclass
class FormatResult:
    """What exporting one format gave: the file, or the reason it did not ship."""

    format: str
    file: str | None
    reason: str | None = None
    checks: list[FormatCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the artifact was written and every check passed."""
        return self.reason is None

    @property
    def max_abs_diff(self) -> float | None:
        """Largest absolute difference from PyTorch over every check."""
        return max((c.max_abs_diff for c in self.checks), default=None)

    @property
    def max_rel_diff(self) -> float | None:
        """Largest difference relative to the PyTorch output's magnitude, over every check."""
        return max((c.max_rel_diff for c in self.checks), default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the manifest)."""
        return {
            "status": "ok" if self.ok else "failed",
            "file": self.file if self.ok else None,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "checks": [c.to_dict() for c in self.checks],
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }


class ArtifactFormat(Protocol):
    """One artifact format: write it, and load it back as ``inference.py`` does."""

    filename: str

    def write(
        self, model: nn.Module, inputs: CheckInputs, recipe: ModelRecipe, bundle: Path
    ) -> None:
        """Write ``artifacts/<filename>`` (and any file it needs) under ``bundle``."""

    def load(self, bundle: Path) -> Runner:
        """A function from an input tensor to the artifact's output tensor."""


def _first_lines(exc: BaseException) -> str:
    """``Type: first line`` of an exception and of each cause (exporters nest them)."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 3:
        text = str(seen).strip().splitlines()
        parts.append(f"{type(seen).__name__}: {text[0][:300] if text else ''}".rstrip(": "))
        seen = seen.__cause__
    return " <- ".join(parts)


@contextmanager
def _quiet(notes: list[str]) -> Iterator[None]:
    """Record the exporters' warnings as notes instead of printing them."""
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # "torchvision is not installed" and similar
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        onnx_logger.setLevel(level)
    for item in caught:
        if issubclass(item.category, (torch.jit.TracerWarning, UserWarning)):
            note = f"{item.category.__name__}: {str(item.message).splitlines()[0][:200]}"
            if note not in notes:
                notes.append(note)


class OnnxFormat:
    """``artifacts/model.onnx``: torch.export-based ONNX, run with onnxruntime."""

    filename = "model.onnx"

    def write(
        self, model: nn.Module, inputs: CheckInputs, recipe: ModelRecipe, bundle: Path
    ) -> None:
        """Export with dynamic batch (and sequence) dimensions."""
        dims = {
            index: torch.export.Dim(name, max=inputs.max_sizes.get(index, torch.inf))  # type: ignore[arg-type]
            for index, name in inputs.dynamic_dims.items()
        }
        torch.onnx.export(
            model,
            (inputs.trace,),
            str(bundle / "artifacts" / self.filename),
            input_names=["inputs"],
            output_names=["outputs"],
            dynamic_shapes=(dims,),
            dynamo=True,
            verbose=False,
        )

    def load(self, bundle: Path) -> Runner:
        """An onnxruntime CPU session."""
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(bundle / "artifacts" / self.filename), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

        return run


class TorchScriptFormat:
    """``artifacts/model.torchscript.pt``: a traced TorchScript module."""

    filename = "model.torchscript.pt"

    def write(
        self, model: nn.Module, inputs: CheckInputs, recipe: ModelRecipe, bundle: Path
    ) -> None:
        """Trace on the example and save; the checks tell whether the trace generalises."""
        traced = torch.jit.trace(model, inputs.trace, check_trace=False)
        torch.jit.save(traced, str(bundle / "artifacts" / self.filename))

    def load(self, bundle: Path) -> Runner:
        """``torch.jit.load`` on the CPU."""
        module = torch.jit.load(str(bundle / "artifacts" / self.filename), map_location="cpu")
        module.eval()
        return module


MODEL_CODE_DIR = "model_code"


def _vendorable_source(cls: type) -> Path | None:
    """The file defining ``cls``, when it can be copied into a bundle as one module.

    It can when it imports nothing from trainforge and nothing relative: the bundle then
    rebuilds the model with torch alone.
    """
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:
        return None
    if source is None:
        return None
    tree = ast.parse(Path(source).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] == "trainforge"
        ):
            return None
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "trainforge" for a in node.names
        ):
            return None
    return Path(source)


class PyTorchFormat:
    """``artifacts/model.pytorch.pt``: state dict, import path and kwargs (weights_only).

    The class's source file is copied to ``model_code/`` when it stands alone, so the
    bundle rebuilds the model without the package that defined it.
    """

    filename = "model.pytorch.pt"

    def write(
        self, model: nn.Module, inputs: CheckInputs, recipe: ModelRecipe, bundle: Path
    ) -> None:
        """Save the payload (and the class's source when it can be vendored)."""
        module_name, _, qualname = recipe.import_path.partition(":")
        source = _vendorable_source(type(model))
        source_file = None
        if source is not None and f"{type(model).__module__}:{type(model).__qualname__}" == (
            recipe.import_path
        ):
            (bundle / MODEL_CODE_DIR).mkdir(exist_ok=True)
            source_file = f"{MODEL_CODE_DIR}/{module_name.replace('.', '_')}.py"
            shutil.copyfile(source, bundle / source_file)
        payload = {
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "import_path": recipe.import_path,
            "class_name": qualname,
            "kwargs": recipe.kwargs,
            "takes_task_spec": recipe.takes_task_spec,
            "source_file": source_file,
        }
        torch.save(payload, bundle / "artifacts" / self.filename)

    def load(self, bundle: Path) -> Runner:
        """Rebuild the model the way ``inference.py`` does, with ``weights_only=True``."""
        from trainforge.production import _bundle_inference

        model: Runner = _bundle_inference.build_pytorch_model(bundle)
        return model


FORMATS: dict[str, ArtifactFormat] = {
    "onnx": OnnxFormat(),
    "torchscript": TorchScriptFormat(),
    "pytorch": PyTorchFormat(),
}
"""Every artifact format by name, in the order a bundle lists them."""


def _compare(
    shape: list[int], actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float
) -> FormatCheck:
    actual, expected = actual.detach().float(), expected.detach().float()
    if actual.shape != expected.shape:
        return FormatCheck(shape, float("inf"), float("inf"), False)
    diff = (actual - expected).abs().max().item() if expected.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    rel = diff / scale if scale > 0 else diff
    return FormatCheck(shape, diff, rel, diff <= atol + rtol * scale)


def export_format(
    name: str,
    model: nn.Module,
    inputs: CheckInputs,
    recipe: ModelRecipe,
    bundle: Path,
    *,
    expected: Sequence[torch.Tensor],
    atol: float,
    rtol: float,
) -> FormatResult:
    """Write format ``name`` into ``bundle`` and check it; never raises for the format's faults.

    Args:
        expected: The eager model's output for each of ``inputs.checks``.
    """
    fmt = FORMATS[name]
    result = FormatResult(name, f"artifacts/{fmt.filename}")
    start = time.perf_counter()
    try:
        with _quiet(result.notes), torch.no_grad():
            fmt.write(model, inputs, recipe, bundle)
            run = fmt.load(bundle)
            for x, want in zip(inputs.checks, expected, strict=True):
                got = run(x)
                if not isinstance(got, torch.Tensor):
                    raise TypeError(f"the artifact returned {type(got).__name__}, not a tensor")
                result.checks.append(_compare(list(x.shape), got, want, atol, rtol))
    except Exception as exc:  # any exporter failure is this format's, not the bundle's
        result.reason = f"cannot export to {name}: {_first_lines(exc)}"
    else:
        failed = [c for c in result.checks if not c.passed]
        if failed:
            worst = max(failed, key=lambda c: c.max_abs_diff)
            result.reason = (
                f"{name} output differs from PyTorch on input shape {worst.shape}: max abs "
                f"diff {worst.max_abs_diff:.3g} > {atol:g} + {rtol:g} x max |output| "
                "(a traced branch or a shape baked in at export)"
            )
    result.seconds = time.perf_counter() - start
    if not result.ok:  # the artifact and its companions (model.onnx.data)
        for leftover in (bundle / "artifacts").glob(f"{fmt.filename}*"):
            leftover.unlink()
    return result
