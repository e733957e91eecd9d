"""Dataset profiles and Jensen-Shannon drift between two of them.

A profile keeps a bounded sample of raw values per numeric feature (not a histogram):
two profiles are then binned on shared edges at comparison time, so a reference
profiled last week and today's data are comparable whatever their ranges. Token
features keep counts, which align by token id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from trainforge.engine._batch import as_batch_dict
from trainforge.engine._task import TaskSpec

__all__ = [
    "DatasetProfile",
    "DriftMetrics",
    "jensen_shannon",
    "load_profile",
    "profile_dataset",
    "save_profile",
]

_PROFILE_FORMAT = "trainforge.dataset_profile/1"

DriftStatus = Literal["healthy", "warning", "critical"]


@dataclass
class DatasetProfile:
    """Per-feature values (numeric) or counts (categorical) of a dataset sample."""

    modality: str
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, dict[int, int]] = field(default_factory=dict)
    num_samples: int = 0


@dataclass(frozen=True)
class DriftMetrics:
    """Drift between a reference and a current profile.

    Attributes:
        js_divergence: The largest per-feature Jensen-Shannon divergence (base 2, 0..1).
        status: ``healthy`` below the warning threshold, ``critical`` at or above the
            critical one, ``warning`` between.
        affected_features: Features at or above the warning threshold.
        details: Divergence per feature.
        timestamp: When it was computed (UTC, ISO 8601).
    """

    js_divergence: float
    status: DriftStatus
    affected_features: list[str]
    details: dict[str, float]
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


def profile_dataset(
    dataset: Any, task_spec: TaskSpec | str, max_samples: int = 1000, max_values: int = 20_000
) -> DatasetProfile:
    """Profile up to ``max_samples`` evenly spaced samples of ``dataset``.

    Tabular: one numeric feature per input column (``f0``, ``f1``, ...). Vision and
    heatmap: ``pixels``, a sample of at most ``max_values`` pixel intensities. Text:
    ``tokens``, token-id frequencies. ``task_spec`` may also be just the modality.

    Examples:
        >>> data = [(torch.tensor([0.0, 1.0]), 0)] * 3
        >>> sorted(profile_dataset(data, TaskSpec.classification_tiny(input_dim=2)).numeric)
        ['f0', 'f1']
    """
    n = len(dataset)
    count = min(n, max_samples)
    indices = np.linspace(0, n - 1, count).round().astype(int) if count else []
    inputs = [as_batch_dict(dataset[int(i)])["inputs"] for i in indices]
    modality = task_spec if isinstance(task_spec, str) else task_spec.modality
    profile = DatasetProfile(modality, num_samples=count)
    if not inputs:
        return profile
    if modality == "text":
        tokens = torch.cat([torch.as_tensor(x).reshape(-1) for x in inputs]).long()
        ids, counts = torch.unique(tokens, return_counts=True)
        profile.categorical["tokens"] = dict(zip(ids.tolist(), counts.tolist()))
    elif modality in ("vision", "heatmap"):
        pixels = torch.cat([torch.as_tensor(x).float().reshape(-1) for x in inputs])
        stride = max(1, pixels.numel() // max_values)  # fixed stride: no RNG consumed
        profile.numeric["pixels"] = pixels[::stride][:max_values].numpy()
    else:
        table = torch.stack([torch.as_tensor(x).float().reshape(-1) for x in inputs]).numpy()
        for j in range(table.shape[1]):
            profile.numeric[f"f{j}"] = table[:, j]
    return profile


def save_profile(profile: DatasetProfile, path: str | os.PathLike[str]) -> Path:
    """Write a profile as plain JSON (atomically); returns the path."""
    path = Path(path)
    payload = {
        "format": _PROFILE_FORMAT,
        "modality": profile.modality,
        "num_samples": profile.num_samples,
        "numeric": {name: values.tolist() for name, values in profile.numeric.items()},
        "categorical": {
            name: {str(k): int(v) for k, v in counts.items()}
            for name, counts in profile.categorical.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    tmp.replace(path)
    return path


def load_profile(path: str | os.PathLike[str]) -> DatasetProfile:
    """Read a profile written by :func:`save_profile`.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is not a trainforge dataset profile.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != _PROFILE_FORMAT:
        raise ValueError(f"{path} is not a trainforge dataset profile ({_PROFILE_FORMAT})")
    return DatasetProfile(
        data["modality"],
        numeric={k: np.asarray(v, dtype=np.float64) for k, v in data["numeric"].items()},
        categorical={
            k: {int(t): int(c) for t, c in counts.items()}
            for k, counts in data["categorical"].items()
        },
        num_samples=int(data["num_samples"]),
    )


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two count / probability vectors."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return float(np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0))


def compare_profiles(
    reference: DatasetProfile,
    current: DatasetProfile,
    *,
    warning: float,
    critical: float,
    bins: int = 20,
) -> DriftMetrics:
    """Per-feature divergence between two profiles, and the overall status."""
    details: dict[str, float] = {}
    for name in sorted(reference.numeric.keys() & current.numeric.keys()):
        a, b = reference.numeric[name], current.numeric[name]
        lo = float(min(a.min(), b.min()))
        hi = float(max(a.max(), b.max()))
        if hi <= lo:
            details[name] = 0.0
            continue
        edges = np.linspace(lo, hi, bins + 1)
        details[name] = jensen_shannon(np.histogram(a, edges)[0], np.histogram(b, edges)[0])
    for name in sorted(reference.categorical.keys() & current.categorical.keys()):
        a_counts, b_counts = reference.categorical[name], current.categorical[name]
        keys = sorted(a_counts.keys() | b_counts.keys())
        details[name] = jensen_shannon(
            np.array([a_counts.get(k, 0) for k in keys]),
            np.array([b_counts.get(k, 0) for k in keys]),
        )
    worst = max(details.values(), default=0.0)
    status: DriftStatus = (
        "critical" if worst >= critical else "warning" if worst >= warning else "healthy"
    )
    affected = [name for name, value in details.items() if value >= warning]
    return DriftMetrics(worst, status, affected, details)
