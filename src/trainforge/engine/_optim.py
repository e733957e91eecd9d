"""Optimizers and learning-rate schedules, built by name from plain arguments.

Every schedule is stepped once per optimizer step (not per batch, not per epoch), with
an optional linear warmup in front, so accumulation and resume never shift it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from trainforge.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "ScheduleSettings",
    "build_optimizer",
    "build_scheduler",
    "warmup_steps_for",
]

OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer")
"""Optimizers by name (``optim.name``)."""
OPTIMIZERS.register("adamw", torch.optim.AdamW)
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("sgd", torch.optim.SGD)
OPTIMIZERS.register("rmsprop", torch.optim.RMSprop)


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter] | nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """An optimizer over ``params``; biases and norm weights get no weight decay.

    Examples:
        >>> opt = build_optimizer("adamw", nn.Linear(2, 2), lr=1e-3, weight_decay=0.1)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [0.1, 0.0]
    """
    cls = OPTIMIZERS.get(name)
    named = (
        list(params.named_parameters())
        if isinstance(params, nn.Module)
        else [(str(i), p) for i, p in enumerate(params)]
    )
    trainable = [(n, p) for n, p in named if p.requires_grad]
    # 1-D tensors (biases, norm scales) are not decayed: decaying them only hurts.
    decay = [p for _, p in trainable if p.ndim >= 2]
    no_decay = [p for _, p in trainable if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    kwargs: dict[str, Any] = {"lr": lr}
    if cls in (torch.optim.AdamW, torch.optim.Adam):
        kwargs["betas"] = tuple(betas)
    elif cls in (torch.optim.SGD, torch.optim.RMSprop):
        kwargs["momentum"] = momentum
    return cls(groups, **kwargs)


def warmup_steps_for(total_steps: int, warmup_steps: int = 0, warmup_ratio: float = 0.0) -> int:
    """Warmup length: ``warmup_steps`` if set, else ``warmup_ratio`` of all steps."""
    if warmup_steps > 0:
        return warmup_steps
    return int(total_steps * warmup_ratio)


def _constant(step: int, total: int) -> float:
    return 1.0


def _cosine(step: int, total: int, min_factor: float = 0.0) -> float:
    progress = min(step / max(total, 1), 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def _linear(step: int, total: int, min_factor: float = 0.0) -> float:
    progress = min(step / max(total, 1), 1.0)
    return 1.0 - (1.0 - min_factor) * progress


def _step_decay(step: int, total: int, step_size: int = 1000, gamma: float = 0.1) -> float:
    return gamma ** (step // step_size)


# what the built-in schedules' arguments must be: (test, the allowed values in words)
_ARGUMENT_RULES: dict[str, tuple[Any, str]] = {
    "min_factor": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a number in [0, 1]"),
    "step_size": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer >= 1",
    ),
    "gamma": (lambda v: isinstance(v, (int, float)) and 0 < v < math.inf, "a number > 0"),
}


def check_schedule_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse an argument schedule ``name`` does not take, or a built-in one's bad value.

    Raises:
        ValueError: Naming the argument and what the schedule takes.
    """
    if name == "onecycle":  # torch's OneCycleLR, which checks its values when built
        given = {"optimizer", "max_lr", "total_steps"}
        signature = inspect.signature(torch.optim.lr_scheduler.OneCycleLR)
        parameters = [p for p in signature.parameters.values() if p.name not in given]
    else:
        parameters = list(inspect.signature(SCHEDULES.get(name)).parameters.values())[2:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return  # a registered schedule that takes anything: it checks its own arguments
    takes = [p.name for p in parameters]
    for key, value in kwargs.items():
        if key not in takes:
            which = ", ".join(takes) if takes else "no arguments"
            raise ValueError(f"the {name} schedule has no argument {key!r} (it takes: {which})")
        rules = _ARGUMENT_RULES if name in ("cosine", "linear", "step") else {}
        test, allowed = rules.get(key, (None, ""))
        if test is not None and not test(value):
            raise ValueError(f"{key} of the {name} schedule must be {allowed}, got {value!r}")


SCHEDULES: Registry[Any] = Registry("learning-rate schedule")
"""Learning-rate schedules by name (``optim.scheduler``): multipliers of the peak rate."""
SCHEDULES.register("none", _constant, aliases=("constant",))
SCHEDULES.register("cosine", _cosine)
SCHEDULES.register("linear", _linear)
SCHEDULES.register("step", _step_decay)


class _ScheduleFactor:
    """Picklable LR multiplier: linear warmup, then the named schedule."""

    # LambdaLR.state_dict() stores this object's __dict__: keep it plain data (no function
    # objects), so a checkpoint holding the scheduler loads with weights_only=True.
    def __init__(self, schedule: str, total_steps: int, warmup: int, kwargs: Mapping[str, Any]):
        SCHEDULES.get(schedule)  # fail early on an unknown name
        self.schedule = schedule
        self.total_steps = total_steps
        self.warmup = warmup
        self.kwargs = dict(kwargs)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        fn = _RESOLVED.get(self.schedule)
        if fn is None:
            fn = _RESOLVED[self.schedule] = SCHEDULES.get(self.schedule)
        return fn(step - self.warmup, self.total_steps - self.warmup, **self.kwargs)


# name -> schedule function; kept off the factor objects, whose __dict__ is saved
_RESOLVED: dict[str, Any] = {}


class _StepLambdaLR(LambdaLR):
    """``LambdaLR`` whose per-step ``step()`` does only the arithmetic.

    torch's ``step()`` runs its misuse checks and context managers on every call, which
    costs about as much as a small model's optimizer step on a CPU. After the first step
    (where torch's checks run), a step with float learning rates sets the same values the
    same way: ``base_lr * factor(last_epoch)`` per group; anything else goes to torch.
    """

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step (``epoch`` as torch's deprecated argument)."""
        groups = self.optimizer.param_groups
        if (
            epoch is not None
            or self._step_count < 2
            or any(not isinstance(g["lr"], float) for g in groups)
        ):
            super().step(epoch)
            return
        self._step_count += 1
        self.last_epoch += 1
        step = self.last_epoch
        values = [base * fn(step) for fn, base in zip(self.lr_lambdas, self.base_lrs)]
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = values


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
    kwargs: Mapping[str, Any] | None = None,
) -> LRScheduler:
    """A per-optimizer-step schedule (``none``, ``cosine``, ``linear``, ``step``) with warmup.

    ``onecycle`` uses torch's OneCycleLR (its own warmup); ``plateau`` is not
    step-based and is refused here with a clear message.
    """
    kwargs = dict(kwargs or {})
    total_steps = max(int(total_steps), 1)
    if name != "plateau":
        check_schedule_arguments(name, kwargs)
    if name == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, **kwargs
        )
    if name == "plateau":
        raise ValueError(
            "optim.scheduler=plateau reduces the lr on a validation metric, which the "
            "per-step schedule cannot do; use cosine, linear, step, onecycle or none"
        )
    warmup = warmup_steps_for(total_steps, warmup_steps, warmup_ratio)
    return _StepLambdaLR(optimizer, _ScheduleFactor(name, total_steps, warmup, kwargs))


class ScheduleSettings:
    """A fresh schedule's learning rates and length, to keep across a resume.

    A scheduler's saved state holds its base learning rates and (for per-step schedules)
    the total length it was built for. Resuming with a new ``optim.lr`` or more epochs
    must use the new values, so capture them from the freshly built scheduler, load the
    checkpoint's state, then :meth:`apply`: only the position (``last_epoch``) comes from
    the checkpoint. With an unchanged config the learning rates are bit-identical to an
    uninterrupted run. Both loop drivers resume through this.
    """

    def __init__(self, scheduler: Any) -> None:
        lambdas = getattr(scheduler, "lr_lambdas", None)
        # None: e.g. OneCycleLR, whose own state is the schedule
        self.lambdas = [dict(fn.__dict__) for fn in lambdas] if lambdas is not None else None
        self.base_lrs = list(scheduler.base_lrs)

    def apply(self, scheduler: Any, optimizer: torch.optim.Optimizer) -> None:
        """Put the captured rates and length back; keep the loaded position."""
        if self.lambdas is None:
            return
        for fn, values in zip(scheduler.lr_lambdas, self.lambdas):
            fn.__dict__.update(values)
        scheduler.base_lrs = list(self.base_lrs)
        for group, base, fn in zip(optimizer.param_groups, self.base_lrs, scheduler.lr_lambdas):
            group["initial_lr"] = base
            group["lr"] = base * fn(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
