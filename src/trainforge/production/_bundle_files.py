"""The files of an export bundle: the folder it is written in, and the generated text
files (requirements, Dockerfile, README, TorchServe)."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from trainforge.errors import ExportError

__all__ = ["dockerfile", "readme", "requirements", "torchserve_config", "work_folder"]

# what inference.py imports for each format (numpy always)
_NEEDS = {"onnx": ("onnxruntime",), "torchscript": ("torch",), "pytorch": ("torch",)}


def requirements(formats: Sequence[str]) -> str:
    """``requirements.txt``: the exact versions installed here of what inference needs."""
    packages = ["numpy", *sorted({p for f in formats for p in _NEEDS[f]})]
    return "".join(f"{name}=={metadata.version(name)}\n" for name in packages)


def dockerfile(formats: Sequence[str]) -> str:
    """A CPU serving image that runs ``inference.py``."""
    torch_index = (
        "# torch from the CPU wheel index keeps the image small\n"
        "ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu\n"
        if any("torch" in _NEEDS[f] for f in formats)
        else ""
    )
    python = ".".join(platform.python_version_tuple()[:2])  # the version it was checked on
    return (
        f"FROM python:{python}-slim\n"
        "WORKDIR /bundle\n"
        f"{torch_index}"
        "COPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\n"
        "COPY . .\n"
        'ENTRYPOINT ["python", "inference.py"]\n'
        'CMD ["--help"]\n'
    )


def torchserve_config(formats: Sequence[str]) -> dict[str, Any]:
    """``torchserve_config.json``: a TorchServe model config for the TorchScript artifact."""
    return {
        "serializedFile": ("artifacts/model.torchscript.pt" if "torchscript" in formats else None),
        "handler": "inference.py",
        "extraFiles": ["configs/task_spec.json", "manifest.json"],
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 8,
        "maxBatchDelay": 50,
        "responseTimeout": 120,
    }


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2e}"


def _pip_install(formats: Sequence[str]) -> str:
    extra = ""
    if any("torch" in _NEEDS[f] for f in formats) and "+cpu" in metadata.version("torch"):
        extra = " --extra-index-url https://download.pytorch.org/whl/cpu"
    return f"pip install -r requirements.txt{extra}"


def readme(manifest: dict[str, Any]) -> str:
    """The bundle's README: what it holds, how it was checked, how to run it."""
    rows = []
    for name, result in manifest["formats"].items():
        status = "shipped" if result["status"] == "ok" else f"left out: {result['reason']}"
        rows.append(
            f"| {name} | {status} | {_number(result['max_abs_diff'])} "
            f"| {_number(result['max_rel_diff'])} |"
        )
    source = manifest.get("source") or {}
    origin = ", ".join(f"{k} `{v}`" for k, v in source.items() if v is not None) or "a model"
    shipped = [n for n, r in manifest["formats"].items() if r["status"] == "ok"]
    return (
        f"# {manifest['task']} model bundle\n\n"
        f"Exported by trainforge {manifest['trainforge_version']} from {origin}.\n\n"
        "## Formats and checks\n\n"
        "Each artifact was run on sample inputs at two batch sizes (and two sequence lengths "
        "for text) and compared with the PyTorch model:\n\n"
        "| format | status | max abs diff | max rel diff |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n## Run\n\n"
        "```bash\n"
        f"{_pip_install(shipped)}\n"
        f"python inference.py inputs.npy --format {shipped[0]}\n"
        "echo '{\"inputs\": [...]}' | python inference.py -\n"
        "```\n\n"
        "From Python, in this folder: `import inference; inference.predict(batch)`.\n\n"
        "`manifest.json` lists the SHA256 of every file; `configs/` holds the task, the "
        "training config with the provenance of every value, and a TorchServe config.\n"
    )


def work_folder(destination: Path) -> Path:
    """A new temporary folder beside ``destination``, renamed to it once the bundle is whole.

    Raises:
        ExportError: ``destination``'s folder cannot be created or written.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{destination.name}-", dir=destination.parent))
    except OSError as err:
        raise ExportError(
            f"cannot write the bundle folder {destination}: {err.strerror or err}",
            path=destination,
            hint="choose an output folder you can write (--output)",
        ) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp's 0700 would follow the bundle when renamed
    return work
