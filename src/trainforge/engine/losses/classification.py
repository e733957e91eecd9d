"""Cross-entropy for class labels and token sequences, and MSE for regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainforge.engine.losses.base import (
    LossInputs,
    LossStrategyRegistry,
    as_float_weights,
    extract_logits,
    require,
)

__all__ = ["ClassificationLoss", "LanguageModelingLoss", "RegressionLoss", "language_model_labels"]


class _CrossEntropy:
    """Shared settings of the cross-entropy strategies (weights on the logits' device)."""

    name = "cross_entropy"

    def __init__(
        self,
        *,
        class_weights: Sequence[float] | Tensor | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.class_weights = as_float_weights(class_weights)
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def _weights(self, logits: Tensor) -> Tensor | None:
        w = self.class_weights
        if w is not None and (w.device != logits.device or w.dtype != logits.dtype):
            # moved once and cached: later calls pay nothing
            w = self.class_weights = w.to(device=logits.device, dtype=logits.dtype)
        return w

    def _cross_entropy(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(
            logits,
            labels.long(),
            weight=self._weights(logits),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ignore_index={self.ignore_index})"


@LossStrategyRegistry.register("classification", aliases=("sequence_classification",))
class ClassificationLoss(_CrossEntropy):
    """Cross-entropy for class labels; a sequence of logits is reduced to its last token.

    Shapes: logits ``[B, C]`` with labels ``[B]``; logits ``[B, T, C]`` with labels
    ``[B]`` (the logits of the last non-padded token are used, found from
    ``attention_mask`` when present, else position ``T - 1``); logits ``[B, T, C]`` with
    labels ``[B, T]`` (token classification, ``ignore_index`` skipped).

    Args:
        class_weights: Per-class weights for imbalanced data.
        label_smoothing: Passed to :func:`torch.nn.functional.cross_entropy`.
        ignore_index: Label value that contributes nothing.

    Examples:
        >>> loss = ClassificationLoss()(torch.zeros(2, 3), {"labels": torch.tensor([0, 2])})
        >>> round(loss.item(), 4)
        1.0986
    """

    name = "classification"

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the mean cross-entropy."""
        logits = extract_logits(outputs)
        labels = require(batch, "labels", self.name)
        if logits.dim() == 3 and labels.dim() == 1:
            logits = _last_token(logits, batch.get("attention_mask"))
        elif logits.dim() == 3:
            logits = logits.reshape(-1, logits.size(-1))
            labels = labels.reshape(-1)
        return self._cross_entropy(logits, labels)


def _last_token(logits: Tensor, attention_mask: Tensor | None) -> Tensor:
    """``[B, T, C]`` -> ``[B, C]``: the logits of each row's last real token."""
    batch = torch.arange(logits.size(0), device=logits.device)
    if attention_mask is None:
        return logits[:, -1]
    # right padding: the last real token sits at (number of real tokens - 1)
    last = attention_mask.to(logits.device).long().sum(dim=1).sub(1).clamp(min=0)
    return logits[batch, last]


@LossStrategyRegistry.register("language_modeling", aliases=("causal_lm", "lm"))
class LanguageModelingLoss(_CrossEntropy):
    """Next-token cross-entropy for causal language models.

    Logits ``[B, T, V]`` predict the token after each position. With ``shift=True`` (the
    default) position ``t`` is scored against ``labels[t + 1]``; pass ``shift=False`` when
    the dataset already yields shifted ``(x, y)`` pairs (nanoGPT style). Labels default to
    ``batch["inputs"]`` (``batch["input_ids"]`` in a Hugging Face style batch).
    The positions :func:`language_model_labels` marks are ignored: labels equal to
    ``ignore_index``, positions whose ``attention_mask`` is 0, and labels equal to
    ``pad_token_id`` when the batch's labels hold no ``ignore_index`` at all.

    Args:
        shift: Shift labels by one position.
        ignore_index: Label value that contributes nothing.
        pad_token_id: The task's pad id (None: no id is ignored by its value).
        label_smoothing: Passed to :func:`torch.nn.functional.cross_entropy`.
        class_weights: Per-token weights (rarely useful).
    """

    name = "language_modeling"

    def __init__(
        self,
        *,
        shift: bool = True,
        ignore_index: int = -100,
        pad_token_id: int | None = None,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | Tensor | None = None,
    ) -> None:
        super().__init__(
            class_weights=class_weights, label_smoothing=label_smoothing, ignore_index=ignore_index
        )
        self.shift = shift
        self.pad_token_id = pad_token_id

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the mean next-token cross-entropy over the non-ignored positions."""
        logits = extract_logits(outputs)
        labels = batch.get("labels")
        if labels is None:
            key = "input_ids" if "input_ids" in batch and "inputs" not in batch else "inputs"
            labels = require(batch, key, self.name)
        if logits.dim() != 3 or labels.dim() != 2:
            raise ValueError(
                f"language modeling expects logits [batch, seq, vocab] and labels "
                f"[batch, seq], got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        labels = language_model_labels(
            labels,
            ignore_index=self.ignore_index,
            pad_token_id=self.pad_token_id,
            attention_mask=batch.get("attention_mask"),
        )
        if self.shift:
            logits = logits[:, :-1]
            labels = labels[:, 1:]
        return self._cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))


def language_model_labels(
    labels: Tensor,
    *,
    ignore_index: int = -100,
    pad_token_id: int | None = None,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Token labels with every position a language-model loss skips set to ``ignore_index``.

    Skipped: positions whose ``attention_mask`` is 0, and labels equal to ``pad_token_id``
    when ``labels`` holds no ``ignore_index`` yet. Labels that already mark positions
    with ``ignore_index`` (what Hugging Face collators do) are taken as they are, so a
    pad id that is also a real token (GPT-2 pads with its end-of-text token) still
    counts where the labels keep it.

    Examples:
        >>> language_model_labels(torch.tensor([[5, 6, 0, 0]]), pad_token_id=0).tolist()
        [[5, 6, -100, -100]]
        >>> language_model_labels(torch.tensor([[5, 0, -100]]), pad_token_id=0).tolist()
        [[5, 0, -100]]
    """
    labels = labels.long()
    ignore = labels == ignore_index
    if pad_token_id is not None:
        # a 0-dim tensor rather than .any(): no host synchronisation on an accelerator
        unmarked = ~ignore.any()
        ignore = ignore | ((labels == pad_token_id) & unmarked)
    if attention_mask is not None:
        ignore = ignore | (attention_mask.to(labels.device) == 0)
    return labels.masked_fill(ignore, ignore_index)


@LossStrategyRegistry.register("regression", aliases=("mse",))
class RegressionLoss:
    """Mean squared error; predictions ``[B, 1]`` are matched to targets ``[B]``."""

    name = "regression"

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the mean squared error."""
        preds = extract_logits(outputs)
        target = require(batch, "labels", self.name)
        if preds.dim() == target.dim() + 1 and preds.size(-1) == 1:
            preds = preds.squeeze(-1)
        if preds.shape != target.shape:
            raise ValueError(
                f"regression predictions {tuple(preds.shape)} do not match targets "
                f"{tuple(target.shape)}"
            )
        return F.mse_loss(preds, target.to(preds.dtype))

    def __repr__(self) -> str:
        return "RegressionLoss()"
