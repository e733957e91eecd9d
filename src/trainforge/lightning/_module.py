"""``TaskModule``: any ``nn.Module`` plus a loss strategy as a LightningModule.

Automatic optimization leaves backward, accumulation and clipping to Lightning
(``Trainer(accumulate_grad_batches=..., gradient_clip_val=...)``). Manual optimization
splits each batch into ``micro_batch_size`` chunks and hands every chunk's loss to the
engine's :class:`~trainforge.engine.GradientAccumulator`, the same object the plain
driver steps with, so the accumulation arithmetic (per-chunk weighting, short windows,
clipping on the boundary) exists once.

The accumulator's backward goes through Lightning's ``manual_backward``
(:mod:`trainforge.lightning._manual`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from trainforge.engine import (
    BATCH_ERRORS,
    ForwardInputs,
    GradientAccumulator,
    ScheduleSettings,
    ShardPlan,
    as_batch_dict,
    batch_size_of,
    forward_and_loss,
    raise_batch_error,
)
from trainforge.engine.metrics import pixel_distance
from trainforge.lightning._manual import LightningBackward, split_batch

__all__ = ["HeatmapModule", "TaskModule"]

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
MetricFn = Callable[[Any, Mapping[str, Any]], Mapping[str, float | Tensor]]
LossFn = Callable[[Any, Mapping[str, Any]], Tensor]


class TaskModule(pl.LightningModule):
    """A LightningModule around any ``nn.Module`` and a loss strategy.

    Args:
        model: The network, called on each batch by the forward contract
            (:func:`~trainforge.engine.forward_and_loss`).
        loss_fn: A loss strategy: ``loss_fn(outputs, batch) -> scalar mean loss``.
        optimizer_factory: ``model -> optimizer`` (e.g. a partial of ``build_optimizer``).
        scheduler_factory: ``optimizer -> LR scheduler``, stepped once per optimizer step.
        metric_fn: ``(outputs, batch) -> {name: value}``, logged as ``val/<name>``.
        optimization: ``automatic`` (Lightning steps) or ``manual`` (micro-batches through
            the GradientAccumulator).
        micro_batch_size: Manual mode: samples per forward/backward (None: whole batch).
        accumulation_steps: Manual mode: batches per optimizer step. In automatic mode use
            ``Trainer(accumulate_grad_batches=...)``.
        max_grad_norm: Manual mode: clip the global gradient norm. In automatic mode use
            ``Trainer(gradient_clip_val=...)``.
        compile: Run the steps through ``torch.compile(model)``; the module's state dict
            (and so every checkpoint) keeps the uncompiled model's names.
        forward_inputs: How batches map to the forward's arguments (None: by name).
        sharding: Under ``ModelParallelStrategy``, how FSDP2 shards the model (units,
            mixed precision, activation checkpointing); None: not sharded.

    Raises:
        ValueError: An unknown ``optimization``, or a manual-only option in automatic mode.

    Examples:
        >>> def loss(outputs, batch):
        ...     return nn.functional.cross_entropy(outputs, batch["labels"])
        >>> module = TaskModule(
        ...     nn.Linear(4, 2), loss,
        ...     optimizer_factory=lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        ...     optimization="manual", micro_batch_size=8)
        >>> module.automatic_optimization
        False
    """

    _net: Callable[..., Any]  # the (compiled) model the steps call, outside the module tree

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        *,
        optimizer_factory: OptimizerFactory,
        scheduler_factory: SchedulerFactory | None = None,
        metric_fn: MetricFn | None = None,
        optimization: Literal["automatic", "manual"] = "automatic",
        micro_batch_size: int | None = None,
        accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        compile: bool = False,
        forward_inputs: ForwardInputs | None = None,
        sharding: ShardPlan | None = None,
    ) -> None:
        super().__init__()
        self.forward_inputs = forward_inputs
        if optimization not in ("automatic", "manual"):
            raise ValueError(f"optimization must be 'automatic' or 'manual', got {optimization!r}")
        if optimization == "automatic":
            given = {
                "micro_batch_size": micro_batch_size,
                "accumulation_steps": None if accumulation_steps == 1 else accumulation_steps,
                "max_grad_norm": max_grad_norm,
            }
            set_ = sorted(k for k, v in given.items() if v is not None)
            if set_:
                raise ValueError(
                    f"{', '.join(set_)} only apply to optimization='manual'; with automatic "
                    "optimization use Trainer(accumulate_grad_batches=..., "
                    "gradient_clip_val=...) instead"
                )
        if micro_batch_size is not None and micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
        self.model = model
        # what the steps call: the compiled wrapper shares the model's parameters and is
        # kept out of the module tree, so state dicts never see its "_orig_mod." names
        object.__setattr__(self, "_net", torch.compile(model) if compile else model)
        self.loss_fn = loss_fn
        self.metric_fn = metric_fn
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.automatic_optimization = optimization == "automatic"
        self.micro_batch_size = micro_batch_size
        self.accumulation_steps = accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.sharding = sharding
        self.accumulator: GradientAccumulator | None = None
        #: ``f(optimizer)`` run before each optimizer step, gradients complete; a
        #: :class:`~trainforge.lightning.RunCallback` sets it for its fit (None: nothing)
        self.step_policies: Callable[[Any], None] | None = None
        self._epoch_loss: dict[str, Any] = {"total": None, "samples": 0, "last": None, "size": 0}

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``: shard the model with FSDP2 over the data-parallel mesh.

        As ``sharding`` says (:meth:`~trainforge.engine.ShardPlan.apply`); None leaves the
        model whole (every other strategy).
        """
        mesh = self.device_mesh
        if self.sharding is None or mesh is None:
            return
        self.sharding.apply(self.model, mesh["data_parallel"])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's output."""
        return self.model(*args, **kwargs)

    def _forward_loss(self, data: dict[str, Any]) -> tuple[Any, Tensor]:
        try:
            return forward_and_loss(self._net, self.loss_fn, data, self.forward_inputs)
        except BATCH_ERRORS as exc:
            raise_batch_error(exc, data)

    def configure_optimizers(self) -> Any:
        """The optimizer from the factory, and the scheduler stepped every optimizer step."""
        optimizer = self.optimizer_factory(self.model)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": "step",
                "frequency": 1,
                "name": "lr",  # LearningRateMonitor: lr, or lr/pg1, lr/pg2 per group
            },
        }

    # -- resume ---------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        """Remember the fresh schedule (Lightning restores a checkpoint right after this)."""
        scheduler = self._scheduler()
        self._fresh_schedule = ScheduleSettings(scheduler) if scheduler is not None else None

    def on_train_start(self) -> None:
        """After a restore: keep the config's learning rates and schedule length."""
        settings = getattr(self, "_fresh_schedule", None)
        scheduler = self._scheduler()
        if self.trainer.ckpt_path and settings is not None and scheduler is not None:
            settings.apply(scheduler, scheduler.optimizer)
        self._fresh_schedule = None

    def __getstate__(self) -> dict[str, Any]:
        """As Lightning's (no trainer), and without the fit's ``step_policies`` either."""
        state = super().__getstate__()
        state["step_policies"] = None  # holds the trainer and the callback of one fit
        return state

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """``step_policies(optimizer)``, if set.

        Lightning calls this hook before every optimizer step in any case; a callback's
        hook of the same name costs one more dispatch a step.
        """
        policies = self.step_policies
        if policies is not None:
            policies(optimizer)

    def _scheduler(self) -> Any:
        configs = self.trainer.lr_scheduler_configs
        return configs[0].scheduler if configs else None

    # -- training -------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Automatic: return the loss. Manual: micro-batches through the accumulator."""
        data = as_batch_dict(batch)
        if self.automatic_optimization:
            _, loss = self._forward_loss(data)
            self._add_train_loss(loss, batch_size_of(data))
            return loss
        self._manual_step(data, batch_idx)
        return None

    def _manual_step(self, data: dict[str, Any], batch_idx: int) -> None:
        total = batch_size_of(data)
        size = self.micro_batch_size or total
        accumulator = self._accumulator_for(math.ceil(total / size), size)
        window_ends = (batch_idx + 1) % self.accumulation_steps == 0 or self._is_last_batch(
            batch_idx
        )
        chunks = split_batch(data, size)
        loss_sum = torch.zeros((), device=self.device)
        for i, chunk in enumerate(chunks):
            _, loss = self._forward_loss(chunk)
            chunk_size = batch_size_of(chunk)
            stepped = accumulator.accumulate(
                loss,
                self,
                is_final_batch=window_ends and i == len(chunks) - 1,
                num_samples=chunk_size,
            )
            loss_sum += loss.detach() * chunk_size
            if stepped:
                scheduler = self.lr_schedulers()
                if scheduler is not None:
                    scheduler.step()  # type: ignore[union-attr]
        self._add_train_loss(loss_sum / total, total)

    def _accumulator_for(self, chunks_per_batch: int, size: int) -> GradientAccumulator:
        # Built on the first batch: the window length in chunks depends on the batch size.
        if self.accumulator is None:
            optimizer = self.optimizers()
            self.accumulator = GradientAccumulator(
                optimizer,  # type: ignore[arg-type]
                accumulation_steps=chunks_per_batch * self.accumulation_steps,
                max_grad_norm=self.max_grad_norm,
                scaler=LightningBackward(self),
                batch_size=size,
                trainer=self.trainer,
            )
        return self.accumulator

    def _is_last_batch(self, batch_idx: int) -> bool:
        total = self.trainer.num_training_batches
        return isinstance(total, int) and batch_idx + 1 >= total

    def on_train_epoch_start(self) -> None:
        """Start the epoch's mean training loss afresh."""
        self._epoch_loss.update(total=None, samples=0, last=None, size=0)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training loss as ``train/loss_epoch`` (one call an epoch)."""
        total = self._epoch_loss["total"]
        if total is not None and self._trainer is not None:
            self.log(
                "train/loss_epoch",
                total / self._epoch_loss["samples"],
                on_step=False,
                on_epoch=True,
                sync_dist=self._trainer.world_size > 1,
            )

    @property
    def epoch_train_loss(self) -> float | None:
        """Mean training loss of the current epoch so far (one host-device sync)."""
        total = self._epoch_loss["total"]
        return None if total is None else float(total) / self._epoch_loss["samples"]

    @property
    def epoch_samples(self) -> int:
        """Training samples of the current epoch so far (this process's)."""
        return int(self._epoch_loss["samples"])

    @property
    def last_train_loss(self) -> Tensor | None:
        """The latest training batch's loss (detached, on the device: no sync)."""
        return self._epoch_loss["last"]

    @property
    def last_train_batch_size(self) -> int:
        """Samples in the latest training batch (0 before the epoch's first)."""
        return int(self._epoch_loss["size"])

    def _add_train_loss(self, loss: Tensor, batch_size: int) -> None:
        # the epoch mean costs one in-place add per step and no sync (see epoch_train_loss);
        # a dict, because setting a module attribute goes through nn.Module.__setattr__
        epoch = self._epoch_loss
        epoch["last"] = loss.detach()
        if epoch["total"] is None:
            epoch["total"] = loss.detach() * batch_size
        else:
            epoch["total"].add_(loss.detach(), alpha=batch_size)
        epoch["samples"] += batch_size
        epoch["size"] = batch_size
        self._log_train_loss(loss, batch_size)

    def _log_train_loss(self, loss: Tensor, batch_size: int) -> None:
        # Lightning's self.log costs about a millisecond per call on a CPU, more than a
        # small model's whole step: log on the steps the loggers write, not on every one.
        # Data-parallel: the mean over the ranks (one all-reduce on those steps only).
        trainer = self._trainer
        every = getattr(trainer, "log_every_n_steps", 1) or 1
        if trainer is None or (self.global_step + 1) % every == 0:
            self.log(
                "train/loss",
                loss.detach(),
                on_step=True,
                prog_bar=True,
                batch_size=batch_size,
                sync_dist=trainer is not None and trainer.world_size > 1,
            )

    # -- validation -----------------------------------------------------------------------

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Log ``val/loss`` and ``val/<metric>`` (epoch means, reduced across ranks)."""
        data = as_batch_dict(batch)
        outputs, loss = self._forward_loss(data)
        size = batch_size_of(data)
        values: dict[str, Any] = {"val/loss": loss}
        values.update({f"val/{k}": v for k, v in self.validation_metrics(outputs, data).items()})
        self.log_dict(values, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=size)
        return loss

    def validation_metrics(
        self, outputs: Any, batch: Mapping[str, Any]
    ) -> Mapping[str, float | Tensor]:
        """Task metrics of one validation batch (``metric_fn``'s, or none)."""
        if self.metric_fn is None:
            return {}
        return self.metric_fn(outputs, batch)


class HeatmapModule(TaskModule):
    """A TaskModule for heatmap localisation: also logs ``val/pixel_error``.

    Validation batches carry ``position``: the true ``(x, y)`` pixel of each sample.
    """

    def validation_metrics(
        self, outputs: Any, batch: Mapping[str, Any]
    ) -> Mapping[str, float | Tensor]:
        """``metric_fn``'s metrics plus ``pixel_error`` (argmax of the heatmap vs position)."""
        metrics = dict(super().validation_metrics(outputs, batch))
        if "position" in batch:
            logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
            metrics["pixel_error"] = pixel_distance(logits.detach(), batch["position"])
        return metrics
