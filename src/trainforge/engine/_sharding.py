"""Which parts of a model FSDP2 shards on their own, and sharding it.

``fully_shard`` on a submodule makes it one unit: its parameters are gathered just
before it runs and freed after, so peak memory is one unit, not the model. The units are
named by class (``trainer.shard_modules``), or chosen automatically: the classes a
Hugging Face model declares it must not split (``_no_split_modules``: its transformer
blocks), else the layers of every ``nn.ModuleList`` (the blocks of the built-in models).
The root is always sharded last, holding whatever is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from trainforge.errors import ConfigError, did_you_mean

__all__ = ["full_value", "shard_model", "shard_units"]


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


def shard_model(model: nn.Module, mesh: Any, names: Sequence[str] = ()) -> list[nn.Module]:
    """``fully_shard`` every unit of :func:`shard_units`, then the root, over ``mesh``."""
    from torch.distributed.fsdp import fully_shard

    units = shard_units(model, names)
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return units


def full_value(tensor: Tensor) -> Tensor:
    """The whole value of ``tensor``: a DTensor's ``full_tensor()`` (a collective), else it.

    A norm of a sharded parameter is a partial value on each rank; statistics that every
    rank computes (gradient health, weight norms) take it whole, so all ranks agree.
    """
    full = getattr(tensor, "full_tensor", None)
    return full() if callable(full) else tensor
