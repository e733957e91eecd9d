"""A trainforge checkpoint as the dict ``lightning.Trainer.fit(ckpt_path=...)`` restores.

:func:`to_lightning_checkpoint` maps the shared layout (see
:class:`~trainforge.engine.RunPosition`) back to Lightning's keys; a checkpoint of the
plain driver has no Lightning loop state, so :func:`lightning_loops` rebuilds it from the
shared position, as Lightning itself would have saved it at the end of that optimizer step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from trainforge.engine import RunPosition

__all__ = ["MAPPED_KEYS", "lightning_loops", "to_lightning_checkpoint"]

# Keys of Lightning's checkpoint dict that the trainforge payload stores elsewhere.
MAPPED_KEYS = ("state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step")


def _set(tracker: dict[str, Any], value: int, *, lag: int = 0) -> None:
    """Set every counter of a progress tracker to ``value`` (``completed`` to value - lag)."""
    for key in tracker:
        tracker[key] = value - lag if key == "completed" else value


def lightning_loops(
    template: Mapping[str, Any],
    position: RunPosition,
    *,
    batches_per_epoch: int | None,
    accumulate: int = 1,
    manual: bool = False,
) -> dict[str, Any]:
    """Lightning's ``loops`` state for ``position``, as a save after that step has it.

    Args:
        template: A fresh fit's ``{"fit_loop": trainer.fit_loop.state_dict()}`` (zeros).
        position: Where training continues.
        batches_per_epoch: Training batches per epoch (after ``limit_train_batches``);
            None for a stream without a length: the batches trained so far are then
            counted from the optimizer steps taken.
        accumulate: Batches per optimizer step.
        manual: Manual optimization counts steps in its own progress tracker.
    """
    import copy

    loops = copy.deepcopy(dict(template))
    fit = loops["fit_loop"]
    epoch, batches, step = position.epoch, position.batches_done, position.global_step
    mid = batches > 0
    for part in ("total", "current"):
        _set(fit["epoch_progress"][part], epoch + 1 if mid else epoch, lag=1 if mid else 0)
        fit["epoch_progress"][part]["processed"] = epoch
    batch = fit["epoch_loop.batch_progress"]
    if batches_per_epoch is None:  # a stream's epochs have no known length
        total, last = step * accumulate + batches % accumulate, False
    else:
        total, last = epoch * batches_per_epoch + batches, batches >= batches_per_epoch
    _set(batch["total"], total, lag=1 if mid else 0)
    _set(batch["current"], batches, lag=1 if mid else 0)
    batch["is_last_batch"] = mid and last
    steps_now = batches // accumulate
    for name in ("epoch_loop.scheduler_progress",):
        _set(fit[name]["total"], step)
        _set(fit[name]["current"], steps_now)
    if manual:
        progress = fit["epoch_loop.manual_optimization.optim_step_progress"]
        _set(progress["total"], step)
        _set(progress["current"], steps_now)
    else:
        optim = fit["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]
        for name in ("step", "zero_grad"):
            _set(optim[name]["total"], step)
            _set(optim[name]["current"], steps_now)
    # Lightning counts a step's batch into _batches_that_stepped after on_train_batch_end
    fit["epoch_loop.state_dict"] = {"_batches_that_stepped": step - 1 if mid else step}
    fit["state_dict"] = {"combined_loader": [position.sampler]} if position.sampler else {}
    return loops


def to_lightning_checkpoint(
    checkpoint: Mapping[str, Any],
    path: str | Path,
    *,
    loops: Mapping[str, Any] | None = None,
) -> Path:
    """Write a loaded trainforge checkpoint as a ``.ckpt`` for ``fit(ckpt_path=...)``.

    Args:
        checkpoint: What :meth:`CheckpointManager.load` returned.
        path: Where to write it (plain data only: loads with ``torch.load(weights_only=True)``).
        loops: Lightning loop state to use (:func:`lightning_loops`) when the checkpoint
            has none of its own (the plain driver wrote it).

    Raises:
        ValueError: No loop state in the checkpoint and none given.
    """
    custom = checkpoint.get("custom_state") or {}
    saved = custom.get("lightning") or {}
    if saved.get("loops") is None and loops is None:
        raise ValueError(
            f"{checkpoint['path']} holds no Lightning loop state and none was given; "
            "pass loops=lightning_loops(...) built from its position"
        )
    prefix = saved.get("state_dict_prefix", "model.")
    optimizer, scheduler = checkpoint["optimizer_state_dict"], checkpoint["scheduler_state_dict"]
    if optimizer is not None and _named(optimizer):  # a sharded save names parameters
        optimizer = _prefixed(optimizer, prefix)
    state = {
        **saved.get("extra", {}),
        "epoch": checkpoint["epoch"],
        "global_step": checkpoint["global_step"],
        "pytorch-lightning_version": saved.get("version") or pl.__version__,
        "state_dict": {f"{prefix}{k}": v for k, v in checkpoint["model_state_dict"].items()},
        "loops": saved.get("loops") if saved.get("loops") is not None else dict(loops or {}),
        "callbacks": saved.get("callbacks") or {},
        "optimizer_states": [
            *([optimizer] if optimizer is not None else []),
            *saved.get("extra_optimizer_states", []),
        ],
        "lr_schedulers": [
            *([scheduler] if scheduler is not None else []),
            *saved.get("extra_lr_schedulers", []),
        ],
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


def _unprefixed(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``state`` with ``prefix`` taken off every key (the network's own names)."""
    return {key.removeprefix(prefix): value for key, value in state.items()}


def _unprefixed_optimizer(optimizer: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A named optimizer state with ``prefix`` taken off every parameter name."""
    return {
        **optimizer,
        "state": _unprefixed(optimizer["state"], prefix),
        "param_groups": [
            {**group, "params": [name.removeprefix(prefix) for name in group["params"]]}
            for group in optimizer["param_groups"]
        ],
    }


def _named(optimizer: Mapping[str, Any]) -> bool:
    """True when an optimizer state is keyed by parameter name (``get_state_dict``'s form)."""
    return any(isinstance(key, str) for key in optimizer.get("state", {}))


def _prefixed(optimizer: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The named optimizer state with the LightningModule's prefix on every parameter name."""
    return {
        **optimizer,
        "state": {f"{prefix}{name}": value for name, value in optimizer["state"].items()},
        "param_groups": [
            {**group, "params": [f"{prefix}{name}" for name in group["params"]]}
            for group in optimizer["param_groups"]
        ],
    }
