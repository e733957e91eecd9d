"""The batch convention shared by collators, loss strategies and the loops.

A batch is a dict ``{"inputs": ..., "labels": ..., "attention_mask": ...}`` (recommended:
keys say what each tensor is, and optional entries such as ``attention_mask`` need no
positional slot) or a tuple / list ``(inputs, labels)``, which is what a plain
``TensorDataset`` yields. :func:`as_batch_dict` turns either into the dict form, so the
rest of the engine reads one shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["as_batch_dict"]


def as_batch_dict(batch: Any) -> dict[str, Any]:
    """Return ``batch`` as a dict with ``inputs`` (and ``labels`` when present).

    Args:
        batch: A mapping (returned as a shallow copy), a ``(inputs, labels)`` tuple or
            list, a 1-tuple ``(inputs,)``, or a bare tensor (taken as ``inputs``).

    Raises:
        ValueError: A sequence of more than two elements: its meaning is ambiguous.

    Examples:
        >>> sorted(as_batch_dict((1, 2)))
        ['inputs', 'labels']
    """
    if isinstance(batch, Mapping):
        return dict(batch)
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        if len(batch) == 2:
            return {"inputs": batch[0], "labels": batch[1]}
        if len(batch) == 1:
            return {"inputs": batch[0]}
        raise ValueError(
            f"a tuple batch must be (inputs, labels) or (inputs,), got {len(batch)} elements; "
            "return a dict such as {'inputs': x, 'labels': y, 'attention_mask': m} instead"
        )
    return {"inputs": batch}
