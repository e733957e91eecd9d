"""In-memory tensor datasets read a batch at a time: one gather per tensor, not per sample.

A ``TensorDataset`` read through a ``DataLoader`` costs one ``__getitem__`` (a tuple of
row views) per sample and a ``torch.stack`` per column; for a batch of 64 that is most of
a small model's data time. :func:`batched_view` wraps such a dataset (or a ``Subset`` of
one, as ``data.val_split`` makes) so that the loader's fetcher calls ``__getitems__``
with the batch's indices and gets each column with one ``index_select``. The batch holds
the same values, dtypes and shapes as ``default_collate`` of the single samples would:
the loss, the gradients and the weights of a run do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

__all__ = ["CollatedColumns", "TensorRows", "batched_view"]


class CollatedColumns(list):
    """A batch already collated by :class:`TensorRows` (the default collator passes it on)."""


class TensorRows(Dataset[tuple[Tensor, ...]]):
    """The rows of equal-length tensors; ``__getitems__`` gathers a whole batch at once.

    Args:
        source: The dataset this view reads (kept for ``len`` and single items).
        tensors: Its columns (``TensorDataset.tensors``).
        rows: For a ``Subset``: the source rows of its items, as an int64 tensor.

    Examples:
        >>> data = TensorDataset(torch.arange(6.0).view(3, 2), torch.tensor([0, 1, 2]))
        >>> x, y = TensorRows(data, data.tensors).__getitems__([2, 0])
        >>> x.tolist(), y.tolist()
        ([[4.0, 5.0], [0.0, 1.0]], [2, 0])
    """

    def __init__(
        self, source: Dataset[Any], tensors: Sequence[Tensor], rows: Tensor | None = None
    ) -> None:
        self.source = source
        self.tensors = tuple(tensors)
        self.rows = rows
        self._on_cpu = all(t.device.type == "cpu" for t in self.tensors)

    def __len__(self) -> int:
        """The source's length."""
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        """One sample, exactly as the source gives it."""
        return self.source[index]

    def __getitems__(self, indices: list[int]) -> CollatedColumns:
        """The batch of ``indices``: each column gathered with one ``index_select``."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if self.rows is not None:
            index = self.rows.index_select(0, index)
        if self._on_cpu:
            return CollatedColumns(t.index_select(0, index) for t in self.tensors)
        return CollatedColumns(t.index_select(0, index.to(t.device)) for t in self.tensors)


def _plain_tensor_dataset(dataset: Any) -> bool:
    """A TensorDataset whose items are TensorDataset's own (no overridden reads)."""
    kind = type(dataset)
    return (
        isinstance(dataset, TensorDataset)
        and kind.__getitem__ is TensorDataset.__getitem__
        and getattr(kind, "__getitems__", None) is None
        and all(t.dim() > 0 for t in dataset.tensors)
    )


def batched_view(dataset: Dataset[Any]) -> Dataset[Any]:
    """``dataset`` as :class:`TensorRows` where that reads the same samples, else itself.

    Covers a plain ``TensorDataset`` and a ``Subset`` of one whose indices all lie in
    range; anything else (a subclass with its own ``__getitem__``, other datasets) is
    returned unchanged and read sample by sample.
    """
    if _plain_tensor_dataset(dataset):
        return TensorRows(dataset, dataset.tensors)  # type: ignore[attr-defined]
    if (
        type(dataset) is Subset
        and _plain_tensor_dataset(dataset.dataset)
        and len(dataset.indices) > 0
    ):
        inner = dataset.dataset
        size = len(inner)  # type: ignore[arg-type]
        try:
            rows = torch.as_tensor(dataset.indices, dtype=torch.long).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            return dataset
        if rows.numel() != len(dataset.indices) or rows.min() < -size or rows.max() >= size:
            return dataset  # out-of-range indices fail per sample, as they always did
        rows = torch.where(rows < 0, rows + size, rows)
        return TensorRows(dataset, inner.tensors, rows)  # type: ignore[attr-defined]
    return dataset
