"""Manual optimization under Lightning: the accumulator's backward, and batch chunks.

The accumulator calls ``loss.backward()`` itself, but under Lightning a backward must go
through ``manual_backward`` (precision plugins scale the loss there, DDP prepares its
reducer, the ``on_*_backward`` hooks fire). :class:`LightningBackward` is the smallest
adapter for that: it fills the accumulator's ``scaler`` slot, whose ``scale(loss)`` result
is the only thing the accumulator calls ``backward()`` on. Loss scaling and unscaling stay
Lightning's: its optimizer step (``LightningOptimizer.step``) unscales fp16 gradients and
skips non-finite steps, and fires ``on_before_optimizer_step`` for the callbacks.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from trainforge.engine import batch_size_of

__all__ = ["LightningBackward", "split_batch"]


class _BackwardHandle:
    """What :meth:`LightningBackward.scale` returns: ``backward()`` is ``manual_backward``."""

    def __init__(self, module: pl.LightningModule, loss: Tensor) -> None:
        self.module, self.loss = module, loss

    def backward(self) -> None:
        """``manual_backward`` of the loss."""
        self.module.manual_backward(self.loss)


class LightningBackward:
    """A GradScaler-shaped adapter: routes the accumulator's backward through Lightning.

    ``unscale_``/``update`` do nothing and ``get_scale`` is constant because Lightning's
    precision plugin owns any real loss scaling; ``step`` is the (Lightning) optimizer's.
    """

    def __init__(self, module: pl.LightningModule) -> None:
        self.module = module

    def scale(self, loss: Tensor) -> _BackwardHandle:
        """The loss as a handle whose ``backward()`` is Lightning's."""
        return _BackwardHandle(self.module, loss)

    def unscale_(self, optimizer: Any) -> None:
        """Nothing: Lightning's precision plugin unscales."""
        return None

    def step(self, optimizer: Any) -> None:
        """The (Lightning) optimizer's step."""
        optimizer.step()

    def update(self) -> None:
        """Nothing: Lightning's precision plugin updates its scale."""
        return None

    def get_scale(self) -> float:
        """1.0: the loss is not scaled here."""
        return 1.0


def split_batch(batch: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Chunks of at most ``size`` samples; tensors are sliced on dim 0, the rest shared."""
    total = batch_size_of(batch)
    chunks = []
    for start in range(0, total, size):
        chunks.append(
            {
                key: value[start : start + size]
                if isinstance(value, Tensor) and value.ndim and len(value) == total
                else value
                for key, value in batch.items()
            }
        )
    return chunks
