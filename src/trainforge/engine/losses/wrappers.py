"""Wrappers that add safety checks around any loss strategy.

They take the wrapped strategy as their first argument and keep its ``name`` visible as
``inner.name``, so logs say which loss is really computed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.engine._batch import model_loss
from trainforge.engine.losses.base import (
    LossInputs,
    LossStrategy,
    LossStrategyRegistry,
    extract_logits,
)
from trainforge.errors import TrainingError

__all__ = ["ModelLoss", "PEFTAwareLoss", "QuantizationSafeLoss"]

logger = logging.getLogger(__name__)


class PEFTAwareLoss:
    """Checks, for adapter fine-tuning (LoRA and similar), that the loss can train anything.

    On the first call it counts the model's trainable parameters: none is an error,
    all of them is logged as a warning (the base model was probably not frozen). On every
    call in grad mode it checks that the loss depends on a trainable parameter, which
    catches adapters attached to the wrong modules before a whole epoch is wasted. Model
    outputs that are objects with ``.logits`` are unwrapped before the inner strategy
    sees them. The loss value itself is the inner strategy's, unchanged.

    Args:
        inner: The strategy that computes the loss.
        model: The model being fine-tuned (optional: without it only the grad-flow check
            runs).

    Examples:
        >>> from trainforge.engine.losses.classification import ClassificationLoss
        >>> strategy = PEFTAwareLoss(ClassificationLoss())
        >>> strategy.name
        'peft_aware'
    """

    name = "peft_aware"

    def __init__(self, inner: LossStrategy, model: nn.Module | None = None) -> None:
        self.inner = inner
        self.model = model
        self._checked = False

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the inner loss after checking that gradients can reach an adapter."""
        if not self._checked and self.model is not None:
            self._check_trainable(self.model)
        self._checked = True
        loss = self.inner(extract_logits(outputs), batch)
        if torch.is_grad_enabled() and not loss.requires_grad:
            raise TrainingError(
                f"the loss of '{self.inner.name}' does not depend on any trainable parameter",
                hint="check that the adapter layers are in the forward path and have "
                "requires_grad=True (model.print_trainable_parameters() with peft)",
            )
        return loss

    @staticmethod
    def _check_trainable(model: nn.Module) -> None:
        trainable = total = 0
        for param in model.parameters():
            total += param.numel()
            if param.requires_grad:
                trainable += param.numel()
        if trainable == 0:
            raise TrainingError(
                "the model has no trainable parameters",
                hint="attach adapters (e.g. peft.get_peft_model) or unfreeze some layers",
            )
        if trainable == total:
            logger.warning(
                "every parameter (%d) is trainable: the base model is not frozen, so this is "
                "full fine-tuning, not adapter training",
                total,
            )
        else:
            logger.info(
                "training %d of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total
            )

    def __repr__(self) -> str:
        return f"PEFTAwareLoss({self.inner!r})"


class QuantizationSafeLoss:
    """Computes the inner loss in float32, whatever the output dtype, with infinities guarded.

    Half-precision and quantised models produce fp16 / bf16 (or dequantised) logits
    whose softmax under- or overflows; the logits are cast to float32 first, and
    ``+-inf`` entries (saturated fp16 activations) are replaced by the largest finite value
    of the original dtype so the cross-entropy stays finite. NaN is left alone on purpose:
    it signals a real fault that the gradient monitor reports.

    Args:
        inner: The strategy that computes the loss.

    Examples:
        >>> from trainforge.engine.losses.classification import ClassificationLoss
        >>> logits = torch.tensor([[float("inf"), 0.0]], dtype=torch.float16)
        >>> loss = QuantizationSafeLoss(ClassificationLoss())(logits, {"labels": torch.tensor([0])})
        >>> loss.dtype, bool(torch.isfinite(loss))
        (torch.float32, True)
    """

    name = "quantization_safe"

    def __init__(self, inner: LossStrategy) -> None:
        self.inner = inner

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the inner loss computed on float32 logits."""
        logits = extract_logits(outputs)
        if logits.is_floating_point():
            limit = torch.finfo(logits.dtype).max
            logits = torch.nan_to_num(logits.float(), nan=float("nan"), posinf=limit, neginf=-limit)
        else:  # integer (quantised) outputs: dequantise naively to float32
            logits = logits.float()
        return self.inner(logits, batch)

    def __repr__(self) -> str:
        return f"QuantizationSafeLoss({self.inner!r})"


@LossStrategyRegistry.register("model")
class ModelLoss:
    """The loss the model computes itself (``task.loss: model``): ``outputs.loss``.

    For models that take ``labels`` and return a ``loss`` (``transformers`` models, or
    any model whose output is a mapping / object with ``loss``). Without ``task.loss:
    model`` such a loss is still used whenever ``labels`` were passed to the model.

    Examples:
        >>> import torch
        >>> ModelLoss()({"loss": torch.tensor(0.5)}, {}).item()
        0.5
    """

    name = "model"

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the model's own loss; raise when it returned none."""
        loss = model_loss(outputs)
        if loss is None:
            raise TrainingError(
                f"task.loss=model, but the model returned no loss (got "
                f"{type(outputs).__name__}, batch keys {sorted(batch)})",
                key="task.loss",
                hint="pass 'labels' in the batch so the model computes its loss, or choose "
                "a loss strategy (unset task.loss to use the one of task.task_type)",
            )
        return loss

    def __repr__(self) -> str:
        return "ModelLoss()"
