"""``digits``: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import numpy as np
import torch

from trainforge.zoo._dataset import TensorDictDataset

__all__ = ["digits_datasets"]


def digits_datasets(*, val_split: float, seed: int) -> tuple[TensorDictDataset, TensorDictDataset]:
    """1,797 digits as 64 float32 features in [0, 1]; stratified, seeded train/val split."""
    # scikit-learn (and SciPy under it) only when the digits are asked for
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    features = (features / 16.0).astype(np.float32)  # pixel values are 0..16
    train_x, val_x, train_y, val_y = train_test_split(
        features, labels, test_size=val_split, stratify=labels, random_state=seed
    )
    return (
        TensorDictDataset(
            {"inputs": torch.from_numpy(train_x), "labels": torch.from_numpy(train_y).long()}
        ),
        TensorDictDataset(
            {"inputs": torch.from_numpy(val_x), "labels": torch.from_numpy(val_y).long()}
        ),
    )
