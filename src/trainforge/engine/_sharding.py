"""Which parts of a model FSDP2 shards on their own, and sharding it.

``fully_shard`` on a submodule makes it one unit: its parameters are gathered just
before it runs and freed after, so peak memory is one unit, not the model. The units are
named by class (``trainer.shard_modules``), or chosen automatically: the classes a
Hugging Face model declares it must not split (``_no_split_modules``: its transformer
blocks), else the layers of every ``nn.ModuleList`` (the blocks of the built-in models).
The root is always sharded last, holding whatever is left. Mixed precision (the dtype
parameters are gathered in, and gradients reduced in) and activation checkpointing (each
unit recomputes its activations in the backward pass) apply per unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainforge.errors import ConfigError, did_you_mean

__all__ = ["DTYPES", "ShardPlan", "checkpoint_units", "full_value", "shard_model", "shard_units"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""``trainer.param_dtype`` / ``trainer.reduce_dtype`` names -> torch dtypes."""


def shard_units(model: nn.Module, names: Sequence[str] = ()) -> list[nn.Module]:
    """The submodules sharded as units, innermost first.

    Args:
        model: The network.
        names: Class names (``trainer.shard_modules``); empty: the automatic choice.

    Raises:
        ConfigError: A name matches no submodule's class (with the closest one).
    """
    modules = [m for m in model.modules() if m is not model]
    if names:
        present = {type(m).__name__ for m in modules}
        unknown = [name for name in names if name not in present]
        if unknown:
            hints = [f"{n!r} (did you mean {did_you_mean(n, present)}?)" for n in unknown]
            raise ConfigError(
                f"trainer.shard_modules names no class of this model: {', '.join(hints)}; "
                f"its classes are {', '.join(sorted(present))}",
                key="trainer.shard_modules",
            )
        units = [m for m in modules if type(m).__name__ in set(names)]
    else:
        declared = set(getattr(model, "_no_split_modules", None) or ())
        units = [m for m in modules if type(m).__name__ in declared]
        if not units:
            units = [layer for m in modules if isinstance(m, nn.ModuleList) for layer in m]
    return list(reversed(units))  # a nested unit is sharded before the one holding it


def checkpoint_units(units: Sequence[nn.Module]) -> None:
    """Checkpoint every unit's activations (torch's composable ``checkpoint``), in place.

    A unit keeps its activations only at its boundary and recomputes the rest in the
    backward pass. Unlike a wrapper module it adds no level to the module tree, so
    parameter names, state dicts and checkpoints are those of the unchecked model.
    """
    from torch.distributed._composable import checkpoint

    for unit in units:
        checkpoint(unit)


def shard_model(
    model: nn.Module,
    mesh: Any,
    names: Sequence[str] = (),
    *,
    param_dtype: str | None = None,
    reduce_dtype: str | None = None,
    activation_checkpointing: bool = False,
) -> list[nn.Module]:
    """``fully_shard`` every unit of :func:`shard_units`, then the root, over ``mesh``.

    Args:
        model: The network, sharded in place.
        mesh: The data-parallel device mesh.
        names: Class names of the units (``trainer.shard_modules``); empty: automatic.
        param_dtype: Gather and compute the parameters in this dtype (``DTYPES`` name).
        reduce_dtype: Reduce gradients in this dtype (None: ``param_dtype``'s).
        activation_checkpointing: Recompute each unit's activations in the backward pass.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    units = ShardPlan(tuple(names), activation_checkpointing=activation_checkpointing).units(model)
    if activation_checkpointing:
        checkpoint_units(units)
    policy = MixedPrecisionPolicy(
        param_dtype=DTYPES[param_dtype] if param_dtype else None,
        reduce_dtype=DTYPES[reduce_dtype] if reduce_dtype else None,
    )
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return units


@dataclass(frozen=True)
class ShardPlan:
    """How a model is sharded: its units by class name, mixed precision, checkpointing.

    The ``trainer.shard_modules``, ``param_dtype``, ``reduce_dtype`` and
    ``activation_checkpointing`` of a sharded strategy.
    """

    names: tuple[str, ...] = ()
    param_dtype: str | None = None
    reduce_dtype: str | None = None
    activation_checkpointing: bool = False

    def units(self, model: nn.Module) -> list[nn.Module]:
        """:func:`shard_units` of ``model``; some are needed to checkpoint activations.

        Raises:
            ConfigError: A name matches no class, or activation checkpointing has no unit.
        """
        units = shard_units(model, self.names)
        if self.activation_checkpointing and not units:
            raise ConfigError(
                f"trainer.activation_checkpointing: {type(model).__name__} has no submodule "
                "to checkpoint (no _no_split_modules, no nn.ModuleList); name the classes in "
                "trainer.shard_modules (e.g. [Linear]) or set "
                "trainer.activation_checkpointing=false",
                key="trainer.activation_checkpointing",
            )
        return units

    def apply(self, model: nn.Module, mesh: Any) -> list[nn.Module]:
        """Shard ``model`` over ``mesh`` with FSDP2 (:func:`shard_model`); return the units."""
        return shard_model(
            model,
            mesh,
            self.names,
            param_dtype=self.param_dtype,
            reduce_dtype=self.reduce_dtype,
            activation_checkpointing=self.activation_checkpointing,
        )


def full_value(tensor: Tensor) -> Tensor:
    """The whole value of ``tensor``: a DTensor's ``full_tensor()`` (a collective), else it.

    A norm of a sharded parameter is a partial value on each rank; statistics that every
    rank computes (gradient health, weight norms) take it whole, so all ranks agree.
    """
    full = getattr(tensor, "full_tensor", None)
    return full() if callable(full) else tensor
