"""``RunCallback``: the Lightning driver's one callback, forwarding to ``RunPolicies``.

Every decision of a ``trainforge train`` run (gradient health, logging, checkpoints, best
epoch, early stopping, hooks) is taken by :class:`~trainforge.engine.policies.RunPolicies`,
the object the plain driver calls from its loop. This adapter maps Lightning's hooks to
the same calls at the same moments, so both drivers decide alike. One callback instead of
one per policy also keeps Lightning's per-step hook dispatch to a single object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from trainforge.engine.policies import RunPolicies, SaveFn
from trainforge.lightning._callbacks import (
    epoch_batches,
    max_steps_reached,
    network_of,
    scalar_metrics,
)
from trainforge.lightning._module import TaskModule

__all__ = ["RunCallback"]

Saver = Callable[[pl.Trainer, pl.LightningModule, Mapping[str, float]], "Path | None"]

# Lightning calls every hook of every callback on every batch, each through its profiler
# context (a few microseconds, as much as a small model's optimizer bookkeeping); a hook
# that is not callable it skips.
_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
)


def keep_batch_hooks(callback: Callback, owner: type[Callback], used: Sequence[str]) -> None:
    """Make Lightning skip ``callback``'s per-batch hooks but ``used`` and a subclass's own."""
    for hook in _BATCH_HOOKS:
        own = getattr(type(callback), hook) not in (getattr(Callback, hook), getattr(owner, hook))
        if hook not in used and not own:
            setattr(callback, hook, None)


class RunCallback(Callback):
    """Forwards a Lightning fit's hooks to :class:`RunPolicies`.

    Args:
        policies: The run's policies (every rank has its own; only rank zero's write).
        save: ``save(trainer, pl_module, metrics)`` writes a checkpoint
            (e.g. :class:`~trainforge.lightning.LightningSaver`); None: never.
        every_rank: Call ``save`` on every rank (a sharded model's collective save), not
            on rank zero alone.

    The module should expose ``last_train_loss`` (the latest step's loss tensor),
    ``epoch_train_loss`` and ``epoch_samples``, as :class:`~trainforge.lightning.TaskModule`
    does; the epoch's validation metrics are read from ``trainer.callback_metrics``.
    """

    def __init__(
        self, policies: RunPolicies, save: Saver | None = None, *, every_rank: bool = False
    ) -> None:
        self.policies = policies
        self.save = save
        self.every_rank = every_rank
        self._last_step = 0
        self._val: dict[str, float] = {}
        self._epoch_start = self._batches_end = 0.0
        self._save_for: tuple[Any, Any, SaveFn | None] = (None, None, None)
        self._network_for: tuple[Any, nn.Module | None] = (None, None)
        self._lent_to: TaskModule | None = None  # running the pre-step policies for a fit
        used = ["on_train_batch_end"]
        if policies.acts_before_step:
            used.append("on_before_optimizer_step")
        keep_batch_hooks(self, RunCallback, used)

    def _network(self, pl_module: pl.LightningModule) -> nn.Module:
        """``network_of(pl_module)``, looked up once per module (it is read every step)."""
        module, cached = self._network_for
        if module is pl_module and cached is not None:
            return cached
        network = network_of(pl_module)
        self._network_for = (pl_module, network)
        return network

    def _saver(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> SaveFn | None:
        cached_trainer, cached_module, saver = self._save_for
        if cached_trainer is trainer and cached_module is pl_module:
            return saver  # built once per fit, not per step
        save = self.save
        if save is None or not (trainer.is_global_zero or self.every_rank):
            saver = None
        else:

            def saver(metrics: Mapping[str, float], epoch_done: bool) -> Path | None:
                return save(trainer, pl_module, metrics)

        self._save_for = (trainer, pl_module, saver)
        return saver

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """A :class:`TaskModule` runs the pre-step policies from its own hook.

        Lightning calls the module's ``on_before_optimizer_step`` before every step
        anyway; the callback's hook would add one dispatch a step. A subclass's own hook,
        and any other module, keep the callback's.
        """
        self._take_back()  # a fit that ended without teardown or on_exception
        own = type(self).on_before_optimizer_step is RunCallback.on_before_optimizer_step
        if (
            stage == "fit"
            and own
            and self.policies.acts_before_step
            and isinstance(pl_module, TaskModule)
        ):
            pl_module.step_policies = partial(self.on_before_optimizer_step, trainer, pl_module)
            self.on_before_optimizer_step = None  # type: ignore[assignment,method-assign]
            self._lent_to = pl_module

    def _take_back(self) -> None:
        """Undo :meth:`setup`'s hand-over: the module's hook runs nothing after this fit."""
        module = self._lent_to
        if module is not None:
            module.step_policies = None
            del self.on_before_optimizer_step  # the class's hook again
            self._lent_to = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """The fit is over: take the pre-step policies back from the module."""
        self._take_back()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """A failed fit skips ``teardown``: take the pre-step policies back here."""
        self._take_back()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Remember the step a resumed fit starts at; a resumed epoch starts here."""
        self._last_step = trainer.global_step
        if trainer.fit_loop.restarted_mid_epoch:  # Lightning skips on_train_epoch_start then
            self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``epoch_start``; the epoch's clock starts."""
        self._val = {}
        self.policies.start_epoch(trainer.current_epoch)
        self._epoch_start = self._batches_end = time.perf_counter()

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Health, lr and weight snapshot; a refused step has its gradients dropped."""
        step = trainer.global_step + 1
        if not self.policies.before_optimizer_step(step, self._network(pl_module), optimizer):
            # grad=None: the optimizer skips every parameter, moments and decay included
            optimizer.zero_grad(set_to_none=True)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """After an optimizer step (not after a batch that only accumulated)."""
        self._batches_end = time.perf_counter()
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        loss = cast(Tensor, pl_module.last_train_loss)
        if step % self.policies.log_every_n_steps == 0 and trainer.world_size > 1:
            # the mean over the ranks, on logging steps only (a collective: all ranks)
            loss = trainer.strategy.reduce(loss, reduce_op="mean")
        self.policies.after_optimizer_step(
            step,
            trainer.current_epoch,
            self._network(pl_module),
            loss,
            save=self._saver(trainer, pl_module),
        )
        if max_steps_reached(trainer, step) and not epoch_batches(trainer)[1]:
            # max_steps cuts the epoch here, and Lightning would end it unvalidated; a stop
            # request makes it validate now, as the plain driver validates every epoch end
            trainer.should_stop = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``validation_end``; a validation inside an epoch is logged at once."""
        if trainer.sanity_checking:
            return
        _, at_end = epoch_batches(trainer)
        at_end = at_end or max_steps_reached(trainer)  # the validation of a cut epoch
        self._val = self.policies.end_validation(
            trainer.current_epoch,
            trainer.global_step,
            scalar_metrics(trainer.callback_metrics, keep=("val/",)),
            log=not at_end,
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The epoch's decisions: log, rank, stop early, checkpoint."""
        seconds = self._batches_end - self._epoch_start
        samples = cast(int, pl_module.epoch_samples)
        mean = cast("float | None", pl_module.epoch_train_loss)
        if trainer.world_size > 1 and mean is not None:  # a collective: every rank runs it
            mean = float(trainer.strategy.reduce(torch.tensor(mean), reduce_op="mean"))
        train = {
            "train/loss": float("nan") if mean is None else mean,
            "system/epoch_time_s": seconds,
            "system/throughput": samples / seconds if seconds > 0 else 0.0,
        }
        final = (
            trainer.max_epochs is not None
            and trainer.max_epochs > 0
            and trainer.current_epoch + 1 >= trainer.max_epochs
        ) or max_steps_reached(trainer)
        outcome = self.policies.end_epoch(
            trainer.current_epoch,
            trainer.global_step,
            train,
            self._val,
            final=final,
            save=self._saver(trainer, pl_module),
        )
        if trainer.strategy.reduce_boolean_decision(outcome.stop, all=False):
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final state is checkpointed if it has no checkpoint yet."""
        self.policies.end(trainer.global_step, save=self._saver(trainer, pl_module))
