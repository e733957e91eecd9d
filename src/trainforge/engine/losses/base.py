"""The loss-strategy protocol, its inputs, and the registry next to it.

A strategy is called as ``strategy(outputs, batch)``: ``outputs`` is whatever the model
returned (a tensor of logits, or an object / dict holding ``logits``), ``batch`` is the
dict form of the batch (see :mod:`trainforge.engine._batch`). Data (labels, masks) travel
in the batch; settings (class weights, ignore_index, label smoothing) are constructor
arguments, so one strategy object serves every step without per-call options.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol, TypedDict, cast, runtime_checkable

import torch
from torch import Tensor

from trainforge.engine._task import TaskSpec
from trainforge.registry import Registry

__all__ = [
    "LossInputs",
    "LossStrategy",
    "LossStrategyRegistry",
    "extract_logits",
    "get_loss_strategy",
    "require",
]


class LossInputs(TypedDict, total=False):
    """The batch entries a loss strategy reads (all optional; each strategy names its needs).

    Attributes:
        inputs: What the model was fed: token ids ``[B, T]``, images ``[B, C, H, W]``,
            features ``[B, F]``. Language modeling uses it as labels when ``labels`` is
            absent.
        labels: Targets: class ids ``[B]``, token ids ``[B, T]``, per-pixel class ids
            ``[B, H, W]``, heatmaps ``[B, (1,) H, W]`` in ``[0, 1]``, regression values.
        attention_mask: ``[B, T]``, 1 for real tokens and 0 for padding.
    """

    inputs: Tensor
    labels: Tensor
    attention_mask: Tensor


@runtime_checkable
class LossStrategy(Protocol):
    """Turns model outputs and a batch into a scalar loss (mean over valid elements)."""

    name: str

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the scalar loss for ``outputs`` given ``batch``."""
        ...


LossStrategyRegistry: Registry[type] = Registry("loss strategy")
"""Every loss strategy by name; register your own with ``@LossStrategyRegistry.register``."""


def extract_logits(outputs: Any) -> Tensor:
    """Return the prediction tensor from a model's output.

    Accepts a tensor, an object with a ``logits`` attribute (Hugging Face style), a
    mapping with a ``"logits"`` key, or a tuple / list whose first element is the logits.
    """
    if isinstance(outputs, Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(outputs, Mapping) and isinstance(outputs.get("logits"), Tensor):
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], Tensor):
        return outputs[0]
    raise TypeError(
        f"cannot find the logits in a model output of type {type(outputs).__name__}; "
        "return a tensor, an object with a .logits tensor, or a dict with a 'logits' key"
    )


def require(batch: LossInputs, key: str, strategy: str) -> Tensor:
    """Return ``batch[key]`` or raise a KeyError naming the strategy and the batch keys."""
    value = batch.get(key)
    if value is None:
        raise KeyError(
            f"loss strategy '{strategy}' needs batch['{key}'], but the batch has keys "
            f"{sorted(batch)}; return dict batches such as "
            "{'inputs': x, 'labels': y} from your dataset or collator"
        )
    return cast(Tensor, value)


# Fields of a TaskSpec a strategy constructor receives when it declares them.
_SPEC_FIELDS = ("ignore_index", "num_classes", "pad_token_id")


def get_loss_strategy(name_or_task: str | TaskSpec, **kwargs: Any) -> LossStrategy:
    """Build the loss strategy registered under a name, or the one a TaskSpec asks for.

    Args:
        name_or_task: A registered name or alias (``classification``, ``causal_lm``,
            ...), or a :class:`TaskSpec` (its ``loss``, else its ``task_type``; its
            ``ignore_index``, ``num_classes`` and ``pad_token_id`` are passed to
            strategies that take them).
        **kwargs: Constructor arguments of the strategy; they win over TaskSpec values.

    Raises:
        RegistryError: Unknown name; the message lists the valid names and the closest.

    Examples:
        >>> strategy = get_loss_strategy("causal_lm")
        >>> strategy.name
        'language_modeling'
    """
    if isinstance(name_or_task, TaskSpec):
        cls = LossStrategyRegistry.get(name_or_task.loss_name)
        accepted = inspect.signature(cls).parameters
        defaults = {f: getattr(name_or_task, f) for f in _SPEC_FIELDS if f in accepted}
        kwargs = {**defaults, **kwargs}
    else:
        cls = LossStrategyRegistry.get(name_or_task)
    strategy: LossStrategy = cls(**kwargs)
    return strategy


def as_float_weights(weights: Any) -> Tensor | None:
    """Class weights as a float tensor (or None)."""
    if weights is None:
        return None
    return torch.as_tensor(weights, dtype=torch.float32)
