"""``digits``: scikit-learn's bundled 8x8 handwritten digits (no download).

Importing scikit-learn costs more than a second, about as much as the rest of a
``trainforge train --dry-run``. The split arrays are therefore kept in a cache file per
scikit-learn version, split and seed (``$TRAINFORGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/trainforge``, else ``~/.cache/trainforge``); a later run with the same
split loads them with NumPy alone. A cache that cannot be read is rebuilt; one that cannot
be written is skipped.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from trainforge.zoo._dataset import TensorDictDataset

__all__ = ["cache_dir", "digits_datasets"]

_ARRAYS = ("train_x", "val_x", "train_y", "val_y")


def cache_dir() -> Path:
    """Where the zoo keeps derived data: ``$TRAINFORGE_CACHE_DIR`` or the user's cache."""
    chosen = os.environ.get("TRAINFORGE_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trainforge"


def _split(val_split: float, seed: int) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    features = (features / 16.0).astype(np.float32)  # pixel values are 0..16
    train_x, val_x, train_y, val_y = train_test_split(
        features, labels, test_size=val_split, stratify=labels, random_state=seed
    )
    return dict(zip(_ARRAYS, (train_x, val_x, train_y, val_y), strict=True))


def _cached_split(val_split: float, seed: int) -> dict[str, np.ndarray]:
    version = importlib.metadata.version("scikit-learn")
    path = cache_dir() / "digits" / f"sklearn-{version}-split-{val_split!r}-seed-{seed}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in _ARRAYS}
    except (OSError, KeyError, ValueError):  # absent, unreadable or incomplete: rebuild
        pass
    arrays = _split(val_split, seed)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp.name, path)  # readers see the whole file or none
    except OSError:  # a read-only or full disk: every run splits again
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    return arrays


def digits_datasets(*, val_split: float, seed: int) -> tuple[TensorDictDataset, TensorDictDataset]:
    """1,797 digits as 64 float32 features in [0, 1]; stratified, seeded train/val split."""
    arrays = _cached_split(val_split, seed)
    return (
        TensorDictDataset(
            {
                "inputs": torch.from_numpy(arrays["train_x"]),
                "labels": torch.from_numpy(arrays["train_y"]).long(),
            }
        ),
        TensorDictDataset(
            {
                "inputs": torch.from_numpy(arrays["val_x"]),
                "labels": torch.from_numpy(arrays["val_y"]).long(),
            }
        ),
    )
