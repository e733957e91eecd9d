"""The plain loop driver: one training epoch, one validation pass, nothing hidden.

``TrainingLoop.run_epoch`` runs forward, loss, and ``GradientAccumulator.accumulate``
(backward, clip, health check, step on the window boundary) for each batch, steps the LR
schedule once per optimizer step, and calls ``on_step`` after every optimizer step so the
caller can log, checkpoint or stop. Losses are summed on the device; the loop itself
never syncs with the host except where a comment says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from trainforge.engine._accumulator import GradientAccumulator
from trainforge.engine._batch import ForwardInputs, as_batch_dict, batch_size_of, forward_and_loss
from trainforge.errors import TrainforgeError, TrainingError

__all__ = [
    "BATCH_ERRORS",
    "EpochResult",
    "StepInfo",
    "TrainingLoop",
    "ValidationLoop",
    "forward_batch",
    "loader_length",
    "move_to_device",
    "raise_batch_error",
]


@dataclass
class EpochResult:
    """What one pass over the data produced."""

    epoch: int
    metrics: dict[str, float]
    batches: int
    samples: int
    global_step: int
    duration_s: float
    completed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Samples per second."""
        return self.samples / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class StepInfo:
    """Passed to ``on_step`` after every optimizer step."""

    global_step: int
    epoch: int
    batches_done: int
    samples_done: int
    loss: Tensor
    scheduler: Any


def move_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a dict batch to ``device`` (non-blocking where possible)."""
    non_blocking = device.type == "cuda"
    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
        for k, v in batch.items()
    }


def samples_before_batches(samples_before: int, dataloader: Any) -> int:
    """Batches already done in a resumed epoch (from the samples done and the batch size)."""
    size = getattr(dataloader, "batch_size", None) or 1
    return -(-samples_before // size)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


LossFn = Callable[[Any, Mapping[str, Any]], Tensor]


def loader_length(dataloader: Any) -> int | None:
    """Batches per epoch of ``dataloader``; None for a stream without a length."""
    try:
        return len(dataloader)
    except TypeError:  # an IterableDataset without __len__
        return None


def _marking_last(dataloader: Iterable[Any], total: int | None) -> Iterator[tuple[int, Any, bool]]:
    """``(index, batch, is_last)``; a stream without a length is read one batch ahead."""
    if total is not None:
        for index, raw in enumerate(dataloader):
            yield index, raw, index == total - 1
        return
    iterator = iter(dataloader)
    try:
        pending = next(iterator)
    except StopIteration:
        return
    index = 0
    for raw in iterator:
        yield index, pending, False
        pending, index = raw, index + 1
    yield index, pending, True


BATCH_ERRORS = (RuntimeError, ValueError, IndexError, TypeError, KeyError, AttributeError)
"""What a model or a loss raises when a batch does not fit it (shapes, dtypes, keys, types)."""


def _describe(value: Any) -> Any:
    """A batch entry in a message: a tensor's shape, else its type (and its items' types)."""
    if isinstance(value, Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)) and value:
        kinds = sorted({type(item).__name__ for item in value})
        return f"{type(value).__name__} of {len(value)} {'/'.join(kinds)}"
    return type(value).__name__


def raise_batch_error(exc: BaseException, batch: Mapping[str, Any]) -> NoReturn:
    """Re-raise ``exc`` of the model or the loss as a TrainingError naming ``data.name``."""
    if isinstance(exc, TrainforgeError):
        raise exc
    entries = {k: _describe(v) for k, v in batch.items()}
    raise TrainingError(
        f"the model or the loss cannot use this batch: {type(exc).__name__}: {exc}\n"
        f"  batch: {entries}",
        key="data.name",
        hint="check that data.name (or the data passed to train()) yields what the model "
        "and task.task_type expect (batch keys, input size, number of classes, label shape)",
    ) from exc


def forward_batch(
    model: nn.Module,
    loss_fn: LossFn,
    raw: Any,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    inputs: ForwardInputs | None = None,
) -> tuple[dict[str, Any], Any, Tensor]:
    """Move one batch to ``device``, run the model and the loss: (batch, outputs, loss)."""
    batch = move_to_device(as_batch_dict(raw), device)
    try:
        with _autocast(device, autocast_dtype):
            outputs, loss = forward_and_loss(model, loss_fn, batch, inputs)
    except BATCH_ERRORS as exc:
        raise_batch_error(exc, batch)
    return batch, outputs, loss


class TrainingLoop:
    """Runs training epochs over a model with a loss strategy and an accumulator.

    Args:
        model: The network; called on each batch by the forward contract
            (:func:`~trainforge.engine.forward_and_loss`).
        loss_fn: A loss strategy: ``loss_fn(outputs, batch) -> scalar tensor``.
        accumulator: Does backward, clipping, the health check and the optimizer step.
        device: Where batches go.
        autocast_dtype: ``torch.float16`` / ``torch.bfloat16`` for mixed precision.
        on_step: Called after each optimizer step; returning True stops the epoch.
        max_steps: Stop once the accumulator has taken this many optimizer steps.
        max_batches: Train on at most this many batches per epoch (``limit_train_batches``).
        progress: Anything with ``advance(samples, loss)``; a progress bar.
        forward_inputs: How batches map to the forward's arguments (None: by name).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        accumulator: GradientAccumulator,
        *,
        device: torch.device | str = "cpu",
        autocast_dtype: torch.dtype | None = None,
        on_step: Callable[[StepInfo], bool | None] | None = None,
        max_steps: int | None = None,
        max_batches: int | None = None,
        progress: Any = None,
        forward_inputs: ForwardInputs | None = None,
    ) -> None:
        self.model = model
        self.forward_inputs = forward_inputs
        self.loss_fn = loss_fn
        self.accumulator = accumulator
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.on_step = on_step
        self.max_steps = max_steps
        self.max_batches = max_batches
        self.progress = progress

    def run_epoch(
        self,
        dataloader: Iterable[Any],
        epoch: int,
        scheduler: Any = None,
        *,
        samples_before: int = 0,
    ) -> EpochResult:
        """Train on every (remaining) batch of ``dataloader``.

        Args:
            dataloader: Yields batches (dicts or ``(inputs, labels)`` tuples).
            epoch: The epoch number (passed to ``on_step``).
            scheduler: Stepped once per optimizer step.
            samples_before: Samples of this epoch already trained on before a resume.

        Returns:
            The epoch's mean ``train/loss`` (one host sync, at the end) and counters.
        """
        self.model.train()
        start = time.perf_counter()
        total = loader_length(dataloader)
        if self.max_batches is not None:
            limit = max(self.max_batches - samples_before_batches(samples_before, dataloader), 0)
            total = limit if total is None else min(total, limit)
        loss_sum = torch.zeros((), device=self.device)
        samples = 0
        batches = 0
        completed = True
        for index, raw, last in _marking_last(dataloader, total):
            if total is not None and index >= total:
                break
            batch, _, loss = forward_batch(
                self.model,
                self.loss_fn,
                raw,
                self.device,
                self.autocast_dtype,
                self.forward_inputs,
            )
            size = batch_size_of(batch)
            stepped = self.accumulator.accumulate(
                loss, self.model, is_final_batch=last, num_samples=size
            )
            loss_sum.add_(loss.detach(), alpha=size)
            samples += size
            batches += 1
            if self.progress is not None:
                self.progress.advance(size, loss)
            if not stepped:
                continue
            if scheduler is not None:
                scheduler.step()
            step = self.accumulator.effective_step
            info = StepInfo(
                step, epoch, batches, samples_before + samples, loss.detach(), scheduler
            )
            stop = self.on_step(info) if self.on_step is not None else False
            if stop or (self.max_steps is not None and step >= self.max_steps):
                completed = last
                break
        mean = (loss_sum / max(samples, 1)).item()  # the epoch's one host-device sync
        return EpochResult(
            epoch,
            {"train/loss": mean},
            batches,
            samples,
            self.accumulator.effective_step,
            time.perf_counter() - start,
            completed,
        )


class ValidationLoop:
    """Evaluates a model: mean loss and task metrics, weighted by batch size.

    Args:
        model: The network.
        loss_fn: The same loss strategy as training.
        metric_fn: ``metric_fn(outputs, batch) -> {"acc": ...}`` (e.g. the zoo's
            ``task_metrics``); names are prefixed with ``val/``.
        device: Where batches go.
        autocast_dtype: Mixed-precision dtype, as in training.
        prefix: Metric name prefix (``val``).
        max_batches: Evaluate at most this many batches (``limit_val_batches``).
        forward_inputs: How batches map to the forward's arguments (None: by name).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        *,
        metric_fn: Callable[[Any, Mapping[str, Any]], Mapping[str, float]] | None = None,
        device: torch.device | str = "cpu",
        autocast_dtype: torch.dtype | None = None,
        prefix: str = "val",
        max_batches: int | None = None,
        forward_inputs: ForwardInputs | None = None,
    ) -> None:
        self.model = model
        self.forward_inputs = forward_inputs
        self.loss_fn = loss_fn
        self.metric_fn = metric_fn
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.prefix = prefix
        self.max_batches = max_batches

    @torch.no_grad()
    def run_epoch(
        self, dataloader: Iterable[Any], epoch: int, scheduler: Any = None
    ) -> EpochResult:
        """Evaluate on every batch; ``scheduler`` is accepted for symmetry and ignored."""
        was_training = self.model.training
        self.model.eval()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        sums: dict[str, float] = {}
        samples = batches = 0
        try:
            for index, raw in enumerate(dataloader):
                if self.max_batches is not None and index >= self.max_batches:
                    break
                batch, outputs, loss = forward_batch(
                    self.model,
                    self.loss_fn,
                    raw,
                    self.device,
                    self.autocast_dtype,
                    self.forward_inputs,
                )
                size = batch_size_of(batch)
                loss_sum += loss.float() * size
                if self.metric_fn is not None:
                    for name, value in self.metric_fn(outputs, batch).items():
                        sums[name] = sums.get(name, 0.0) + float(value) * size
                samples += size
                batches += 1
        finally:
            self.model.train(was_training)
        count = max(samples, 1)
        metrics = {f"{self.prefix}/loss": (loss_sum / count).item()}  # one host sync
        metrics.update({f"{self.prefix}/{k}": v / count for k, v in sums.items()})
        return EpochResult(epoch, metrics, batches, samples, 0, time.perf_counter() - start)
