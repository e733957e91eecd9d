"""The batch convention and the forward contract shared by both drivers.

A batch is a dict or a tuple / list ``(inputs, labels)`` (what a plain ``TensorDataset``
yields). :func:`as_batch_dict` turns either into the dict form, so the rest of the engine
reads one shape.

:func:`forward_and_loss` is the one place a model is called on a batch, for the plain
loop and for Lightning alike:

- ``model.input_keys`` (a :class:`ForwardInputs` mapping) names forward parameter ->
  batch key explicitly; ``data.input_key`` names the one batch entry passed positionally;
- else a batch with ``inputs`` calls ``model(batch["inputs"])``;
- else the batch keys that match the parameters of the model's ``forward`` are passed as
  keyword arguments (what the Hugging Face Trainer does), so ``{"input_ids",
  "attention_mask", "labels"}`` batches reach a ``transformers`` model as they are.

Outputs may be a tensor, a mapping, a dataclass or any object with ``.logits``. When
``labels`` were passed to the model and it returned its own ``loss``, that loss is used;
otherwise the loss strategy runs on the outputs and the batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from trainforge.errors import TrainingError

__all__ = [
    "ForwardInputs",
    "as_batch_dict",
    "batch_size_of",
    "forward_and_loss",
    "model_loss",
]


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


_SIZE_KEYS = ("inputs", "input_ids", "pixel_values", "labels")


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """Samples in a dict batch: the first dimension of its inputs (or of any tensor).

    Examples:
        >>> import torch
        >>> batch_size_of({"input_ids": torch.zeros(3, 5), "labels": torch.zeros(3)})
        3
    """
    for key in _SIZE_KEYS:
        value = batch.get(key)
        if isinstance(value, Tensor) and value.ndim > 0:
            return int(value.shape[0])
    for value in batch.values():
        if isinstance(value, Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


@dataclass(frozen=True)
class ForwardInputs:
    """How a batch becomes the arguments of the model's ``forward``.

    Args:
        input_keys: Forward parameter -> batch key, passed as keyword arguments
            (``model.input_keys``); wins over everything else.
        input_key: The batch key passed as the one positional argument
            (``data.input_key``).

    Examples:
        >>> ForwardInputs(input_keys={"x": "features"}).input_keys
        {'x': 'features'}
    """

    input_keys: Mapping[str, str] = field(default_factory=dict)
    input_key: str | None = None


@dataclass(frozen=True)
class _Signature:
    names: tuple[str, ...]
    required: tuple[str, ...]
    var_keyword: bool


_SIGNATURES: dict[Any, _Signature] = {}


def _forward_signature(model: Any) -> _Signature:
    """The named parameters of ``model.forward`` (cached per class)."""
    target = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    # a module's forward is its class's; any other callable is its own
    cls = type(target) if isinstance(target, nn.Module) else target
    cached = _SIGNATURES.get(cls)
    if cached is not None:
        return cached
    forward = target.forward if isinstance(target, nn.Module) else target
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        params = ()  # type: ignore[assignment]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p for p in params if p.kind in kinds]
    signature = _Signature(
        tuple(p.name for p in named),
        tuple(p.name for p in named if p.default is inspect.Parameter.empty),
        any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
    )
    _SIGNATURES[cls] = signature
    return signature


def _mismatch(model: Any, batch: Mapping[str, Any], detail: str) -> TrainingError:
    signature = _forward_signature(model)
    expected = ", ".join(signature.names) or "(no named parameters)"
    return TrainingError(
        f"cannot call {type(getattr(model, '_orig_mod', model)).__name__} on this batch: "
        f"{detail}\n  forward() takes: {expected}\n  the batch has: {', '.join(sorted(batch))}",
        key="model.input_keys",
        hint="return batches whose keys are forward()'s parameter names, an 'inputs' entry, "
        "or map them with model.input_keys={parameter: batch_key} (or data.input_key=KEY "
        "for a single positional input)",
    )


_BY_NAME = ForwardInputs()
"""The default: an ``inputs`` entry, else the batch keys named like forward()'s parameters."""


def model_arguments(
    model: Any, batch: Mapping[str, Any], inputs: ForwardInputs | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments ``model`` is called with for ``batch``."""
    inputs = inputs or _BY_NAME
    if inputs.input_keys:
        missing = [key for key in inputs.input_keys.values() if key not in batch]
        if missing:
            raise _mismatch(model, batch, f"model.input_keys names batch key(s) {missing}")
        return (), {param: batch[key] for param, key in inputs.input_keys.items()}
    if inputs.input_key is not None:
        if inputs.input_key not in batch:
            raise _mismatch(model, batch, f"data.input_key={inputs.input_key!r} is not in it")
        return (batch[inputs.input_key],), {}
    if "inputs" in batch:
        return (batch["inputs"],), {}
    signature = _forward_signature(model)
    kwargs = {key: value for key, value in batch.items() if key in signature.names}
    if not kwargs and signature.var_keyword:
        kwargs = dict(batch)
    missing = [name for name in signature.required if name not in kwargs]
    if not kwargs or missing:
        detail = (
            f"required parameter(s) {missing} are not in the batch"
            if missing and kwargs
            else "no batch key matches a forward() parameter"
        )
        raise _mismatch(model, batch, detail)
    return (), kwargs


def model_loss(outputs: Any) -> Tensor | None:
    """The loss a model returned itself (``outputs.loss`` or ``outputs["loss"]``), if any."""
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
    return loss if isinstance(loss, Tensor) else None


LossFn = Callable[[Any, Mapping[str, Any]], Tensor]


def forward_and_loss(
    model: Callable[..., Any],
    loss_fn: LossFn,
    batch: Mapping[str, Any],
    inputs: ForwardInputs | None = None,
) -> tuple[Any, Tensor]:
    """Call ``model`` on a dict batch by the forward contract; return (outputs, loss).

    The model's own ``loss`` is used when ``labels`` were passed to it; otherwise
    ``loss_fn(outputs, batch)`` (a loss strategy) computes it.

    Raises:
        TrainingError: The batch does not fit the model's ``forward``; the message names
            the parameters it takes and the keys the batch has.

    Examples:
        >>> import torch
        >>> outputs, loss = forward_and_loss(
        ...     nn.Linear(2, 1), lambda out, b: out.sum(), {"inputs": torch.ones(1, 2)})
        >>> loss.shape
        torch.Size([])
    """
    args, kwargs = model_arguments(model, batch, inputs)
    outputs = model(*args, **kwargs)
    if "labels" in kwargs:
        own = model_loss(outputs)
        if own is not None:
            return outputs, own
    return outputs, loss_fn(outputs, batch)
