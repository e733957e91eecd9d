"""Explicit gradient accumulation: one window counter, step/clip/zero only on the boundary.

Each micro-batch loss is scaled by ``1 / accumulation_steps`` before ``backward()``, so
after a full window the gradients equal those of one large batch. A window cut short
(the last batches of an epoch, or a smaller last micro-batch when ``num_samples`` is
given) is corrected on the boundary by rescaling the summed gradients by
``accumulation_steps / window_weight`` - the update equals that of one batch holding
the same samples, without having to know the window size in advance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.errors import AccumulationConflictError, TrainingError

__all__ = ["AccumulationConflictError", "AccumulationStats", "GradientAccumulator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccumulationStats:
    """Counters of a :class:`GradientAccumulator` (a snapshot).

    Attributes:
        micro_steps: ``backward()`` calls so far.
        optimizer_steps: Windows completed (optimizer steps attempted).
        skipped_steps: Of those, steps skipped for non-finite gradients (AMP overflow or
            a NaN/inf found by the monitor).
        window_position: Micro-batches in the current, unfinished window.
        accumulation_steps: Micro-batches per window.
        effective_batch_size: Samples per optimizer step (None when batch_size is unknown).
        last_grad_norm: Global gradient norm before clipping at the last step (None when
            clipping is off: it is only computed where it is needed anyway).
    """

    micro_steps: int
    optimizer_steps: int
    skipped_steps: int
    window_position: int
    accumulation_steps: int
    effective_batch_size: int | None
    last_grad_norm: float | None

    @property
    def is_accumulating(self) -> bool:
        """True while gradients of an unfinished window wait for the optimizer step."""
        return self.window_position > 0


class GradientAccumulator:
    """Backward, accumulate, and step the optimizer once per window of micro-batches.

    Args:
        optimizer: The optimizer to step.
        accumulation_steps: Micro-batches per optimizer step (1: step every batch).
        max_grad_norm: Clip the global gradient norm to this (None: no clipping).
        scaler: A ``torch.amp.GradScaler`` for fp16 mixed precision (None: no scaling).
        batch_size: Micro-batch size, for ``effective_batch_size`` and for weighting
            micro-batches of a different size (see ``num_samples`` in :meth:`accumulate`).
        trainer: A Lightning trainer (duck-typed: only ``accumulate_grad_batches`` is
            read). When it accumulates, this object must not.
        before_step: Called on each window boundary with the 1-based number of the
            optimizer step about to be taken, once the gradients are complete (after
            unscaling, before clipping) - where Lightning calls
            ``on_before_optimizer_step``. Returning False skips the step: the gradients
            are dropped and the weights do not move (e.g.
            :meth:`~trainforge.engine.policies.RunPolicies.before_optimizer_step`).

    Raises:
        AccumulationConflictError: ``trainer.accumulate_grad_batches > 1`` and
            ``accumulation_steps > 1``: gradients would be accumulated twice.

    Examples:
        >>> model = nn.Linear(2, 1)
        >>> acc = GradientAccumulator(torch.optim.SGD(model.parameters(), lr=0.1),
        ...                           accumulation_steps=2, batch_size=4)
        >>> [acc.accumulate(model(torch.ones(4, 2)).mean(), model) for _ in range(4)]
        [False, True, False, True]
        >>> acc.effective_batch_size, acc.effective_step
        (8, 2)
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        scaler: Any | None = None,
        batch_size: int | None = None,
        trainer: Any | None = None,
        *,
        before_step: Callable[[int], bool | None] | None = None,
    ) -> None:
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
        lightning_steps = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        if lightning_steps > 1 and accumulation_steps > 1:
            raise AccumulationConflictError(
                f"gradient accumulation is configured twice: Lightning's "
                f"trainer.accumulate_grad_batches={lightning_steps} and the "
                f"GradientAccumulator's accumulation_steps={accumulation_steps}; every "
                f"gradient would be accumulated {lightning_steps * accumulation_steps} times",
                key="trainer.accumulate_grad_batches",
                hint="keep one: set trainer.accumulate_grad_batches=1 to let trainforge "
                "accumulate (manual optimization), or accumulation_steps=1 to let Lightning "
                "do it (automatic optimization)",
            )
        self.optimizer = optimizer
        self.accumulation_steps = accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.scaler = scaler
        self.batch_size = batch_size
        self.trainer = trainer
        self.before_step = before_step
        self._lightning_steps = lightning_steps
        self._micro_steps = 0
        self._optimizer_steps = 0
        self._skipped_steps = 0
        self._window_position = 0
        self._window_weight = 0.0
        self._last_grad_norm: Tensor | None = None

    # -- properties ----------------------------------------------------------------------

    @property
    def is_lightning_managed(self) -> bool:
        """True when the Lightning trainer accumulates (``accumulate_grad_batches > 1``)."""
        return self._lightning_steps > 1

    @property
    def is_accumulating(self) -> bool:
        """True while gradients of an unfinished window wait for the optimizer step."""
        return self._window_position > 0

    @property
    def effective_batch_size(self) -> int | None:
        """Samples per optimizer step: batch_size x accumulation (None without batch_size)."""
        if self.batch_size is None:
            return None
        return self.batch_size * max(self.accumulation_steps, self._lightning_steps)

    @property
    def effective_step(self) -> int:
        """Optimizer steps taken so far: the step to log metrics at."""
        return self._optimizer_steps

    @property
    def stats(self) -> AccumulationStats:
        """A snapshot of the counters (reading ``last_grad_norm`` syncs with the device)."""
        norm = self._last_grad_norm
        return AccumulationStats(
            micro_steps=self._micro_steps,
            optimizer_steps=self._optimizer_steps,
            skipped_steps=self._skipped_steps,
            window_position=self._window_position,
            accumulation_steps=self.accumulation_steps,
            effective_batch_size=self.effective_batch_size,
            last_grad_norm=None if norm is None else float(norm),  # host-device sync
        )

    # -- the step ------------------------------------------------------------------------

    def accumulate(
        self,
        loss: Tensor,
        model: nn.Module | None = None,
        is_final_batch: bool = False,
        *,
        num_samples: int | None = None,
    ) -> bool:
        """Backward one micro-batch loss; on a window boundary, clip and step.

        Args:
            loss: The unscaled mean loss of one micro-batch.
            model: Whose parameters are clipped and monitored (default: the optimizer's).
            is_final_batch: Last batch of the epoch: step even if the window is short.
            num_samples: Samples in this micro-batch; with ``batch_size`` set, a smaller
                micro-batch weighs proportionally less, so the step equals one batch of
                all the window's samples.

        Returns:
            True when the optimizer stepped (or skipped a non-finite step) on this call.

        Raises:
            TrainingError: Lightning accumulates (automatic optimization calls backward
                and step itself).
        """
        if self.is_lightning_managed:
            raise TrainingError(
                "Lightning accumulates gradients here (trainer.accumulate_grad_batches="
                f"{self._lightning_steps}); with automatic optimization Lightning calls "
                "backward() and step() itself",
                hint="do not call GradientAccumulator.accumulate in automatic optimization",
            )
        weight = 1.0
        if num_samples is not None and self.batch_size is not None:
            weight = num_samples / self.batch_size
        if weight == 1.0:
            # no extra autograd node when nothing is scaled (the common case)
            scaled = loss if self.accumulation_steps == 1 else loss / self.accumulation_steps
        else:
            scaled = loss * (weight / self.accumulation_steps)
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()
        self._micro_steps += 1
        self._window_position += 1
        self._window_weight += weight
        if self._window_position < self.accumulation_steps and not is_final_batch:
            return False
        self._step(model)
        return True

    def _step(self, model: nn.Module | None) -> None:
        params: list[nn.Parameter] = []

        def parameters() -> list[nn.Parameter]:
            # listed only when needed (rescale, clip): the walk
            # over the model costs about as much as a small model's optimizer step
            if not params:
                params.extend(model.parameters() if model is not None else self._optimizer_params())
            return params

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self._window_weight != self.accumulation_steps:
            grads = [p.grad for p in parameters() if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, self.accumulation_steps / self._window_weight)
        take = self.before_step is None or self.before_step(self._optimizer_steps + 1) is not False
        if take and self.max_grad_norm is not None:
            self._last_grad_norm = torch.nn.utils.clip_grad_norm_(parameters(), self.max_grad_norm)
        if not take:
            self._skipped_steps += 1
            if self.scaler is not None:
                self.scaler.update()  # closes this step's unscale_ without stepping
        elif self.scaler is not None:
            # get_scale() reads a device scalar: a sync, paid only with AMP enabled
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() < before:
                self._skipped_steps += 1
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._optimizer_steps += 1
        self._window_position = 0
        self._window_weight = 0.0

    def _optimizer_params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    # -- epochs and checkpoints --------------------------------------------------------------

    def reset_epoch(self) -> None:
        """Start a new window; warns when an unfinished window's gradients are discarded."""
        if self._window_position:
            logger.warning(
                "discarding the gradients of %d micro-batch(es) that never reached an "
                "optimizer step; pass is_final_batch=True on the last batch of an epoch",
                self._window_position,
            )
            self.optimizer.zero_grad(set_to_none=True)
        self._window_position = 0
        self._window_weight = 0.0

    def state_dict(self) -> dict[str, Any]:
        """Counters, and the pending gradients of an unfinished window, as plain data.

        Gradients are included only mid-window (tensors, loadable with
        ``torch.load(weights_only=True)``), so resuming from a checkpoint taken between
        two micro-batches continues the same window exactly.
        """
        pending = None
        if self._window_position:
            pending = [
                None if p.grad is None else p.grad.detach().clone()
                for p in self._optimizer_params()
            ]
        return {
            "accumulation_steps": self.accumulation_steps,
            "micro_steps": self._micro_steps,
            "optimizer_steps": self._optimizer_steps,
            "skipped_steps": self._skipped_steps,
            "window_position": self._window_position,
            "window_weight": self._window_weight,
            "pending_grads": pending,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output, including the gradients of a partial window."""
        position = int(state["window_position"])
        if position and int(state["accumulation_steps"]) != self.accumulation_steps:
            raise ValueError(
                f"the checkpoint stopped inside a window of {state['accumulation_steps']} "
                f"micro-batches but accumulation_steps is now {self.accumulation_steps}; "
                "resume with the same trainer.accumulate_grad_batches"
            )
        self._micro_steps = int(state["micro_steps"])
        self._optimizer_steps = int(state["optimizer_steps"])
        self._skipped_steps = int(state["skipped_steps"])
        self._window_position = position
        self._window_weight = float(state["window_weight"])
        pending = state.get("pending_grads")
        params = self._optimizer_params()
        if pending is not None:
            if len(pending) != len(params):
                raise ValueError(
                    f"the checkpoint holds gradients for {len(pending)} parameters, the "
                    f"optimizer has {len(params)}"
                )
            for param, grad in zip(params, pending):
                param.grad = None if grad is None else grad.to(param.device, param.dtype).clone()
