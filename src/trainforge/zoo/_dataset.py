"""The one item convention of every zoo dataset, and deterministic splits.

Every item is a dict of tensors with at least ``inputs`` and ``labels`` (``ball_heatmap``
adds ``position``), so one collate function stacks the batches of every task.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import Dataset

from trainforge.errors import ConfigError

__all__ = ["TensorDictDataset", "random_split_indices"]


class TensorDictDataset(Dataset[dict[str, torch.Tensor]]):
    """Items ``{name: tensor[i]}`` over tensors that share their first dimension.

    Examples:
        >>> data = TensorDictDataset({"inputs": torch.zeros(3, 2), "labels": torch.arange(3)})
        >>> len(data), data[1]["labels"].item()
        (3, 1)
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        lengths = {name: len(tensor) for name, tensor in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must have the same length, got {lengths}")
        self.tensors = dict(tensors)
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}

    def subset(self, indices: torch.Tensor) -> TensorDictDataset:
        """A new dataset holding the rows ``indices`` (copied, so the parent can be freed)."""
        return TensorDictDataset({name: t[indices] for name, t in self.tensors.items()})


def random_split_indices(
    num_items: int, val_split: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded shuffled ``(train, val)`` index tensors; the same for the same arguments."""
    num_val = round(num_items * val_split)
    if not 0 < num_val < num_items:
        raise ConfigError(
            f"val_split={val_split} leaves {num_val} of {num_items} items for validation",
            key="data.val_split",
            hint="use a fraction that keeps at least one item in each split",
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_items, generator=generator)
    return order[num_val:], order[:num_val]
