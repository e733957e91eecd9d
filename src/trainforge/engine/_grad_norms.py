"""How a model's gradient norms reach the host, with one host-device sync.

:class:`NormPlan` lists a model's parameters once. While every gradient is a plain float32
tensor on the CPU, the norms come from one call into the compiled
:mod:`trainforge.engine._fused_norms` (where the package was built with it), or else from
one norm kernel per gradient into one buffer, read once; anything else (frozen layers, half
precision, sharded or GPU gradients) goes through :func:`per_parameter_norms` (one
``_foreach_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainforge.engine._sharding import full_value

try:
    from torch.utils.dlpack import to_dlpack

    from trainforge.engine import _fused_norms
except ImportError:  # built without a C compiler: torch kernels read the norms
    _fused_norms = None  # type: ignore[assignment]
else:
    if getattr(_fused_norms, "INTERFACE_VERSION", None) != 2:  # built from older sources
        _fused_norms = None  # type: ignore[assignment]

# Above this many gradient elements torch's norm kernels, which use every intra-op thread,
# read faster than the fused single-threaded loop (unless torch runs on one thread).
_FUSED_MAX_ELEMENTS = 1 << 18

__all__ = ["NormPlan", "per_parameter_norms"]


class NormPlan:
    """How one model's gradient norms are read, worked out once per model object.

    Walking every submodule costs more than the norms of a small model, so the
    parameters are listed once. While every parameter has a float32 gradient on the CPU
    (the common case), the norms come from one call into the compiled
    :mod:`~trainforge.engine._fused_norms` (each gradient read through DLPack, its
    squares summed in double precision; it declines a gradient that is missing, a tensor
    subclass, or not dense float32 on the CPU). Without it, or for a model larger than
    ``_FUSED_MAX_ELEMENTS`` with several intra-op threads, each norm is written into one
    buffer (no allocation) and the buffer is read once; a gradient that leaves that path
    makes the norm kernel refuse the buffer (checking each gradient's attributes every
    step would cost more). Anything else (frozen layers, half precision, sharded or GPU
    gradients) takes :func:`per_parameter_norms`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.named = list(model.named_parameters())
        self.names = [name for name, _ in self.named]
        self.params = tuple(param for _, param in self.named)
        # the norms of the plain path land in one buffer, read back with one tolist()
        self._buffer = torch.empty(len(self.params), dtype=torch.float32)
        self._slots = list(zip(self.params, self._buffer.unbind()))
        # plain parameters only: a tensor subclass (DTensor) holds its values elsewhere
        self.can_fuse = _fits_fused_read(self.params) and all(
            type(p) is nn.Parameter and p.dtype is torch.float32 and p.is_cpu for p in self.params
        )
        # tried first; off once it declines, until a general read finds contiguous plain
        # gradients again (channels-last gradients stay on the buffer path)
        self.fused = self.can_fuse
        self.plain = False  # set once a general read found plain CPU float32 gradients

    def norms(self) -> tuple[list[str], list[float] | None]:
        """Names and norms of the gradients present now (None when there are none)."""
        if self.fused:
            values = _fused_norms.norms(self.params, to_dlpack, Tensor)
            if values is not None:
                return self.names, values
            self.fused = False  # a gradient is missing, not plain or not contiguous
        if self.plain:
            vector_norm = torch.linalg.vector_norm
            try:
                for param, slot in self._slots:
                    vector_norm(param.grad, out=slot)
            except _LEFT_PLAIN_PATH:
                pass  # a gradient is gone or no longer plain: the general read below
            else:
                return self.names, self._buffer.tolist()
        names, values = per_parameter_norms(self.named)
        self.plain = len(names) == len(self.params) and all(
            _plain(p.grad) for p in self.params if p.grad is not None
        )
        self.fused = (
            self.plain
            and self.can_fuse
            and all(p.grad is not None and p.grad.is_contiguous() for p in self.params)
        )
        return names, values


# What ``vector_norm(grad, out=slot)`` raises for a gradient that is not a dense float32
# CPU tensor outside autograd: None (TypeError), another dtype or device (RuntimeError:
# "Expected out tensor to have dtype/device ..."), requires_grad (RuntimeError: out=
# does not support autograd), sparse (NotImplementedError). Checking each gradient's
# attributes instead costs more than the norms of a small model's biases.
_LEFT_PLAIN_PATH = (TypeError, RuntimeError, NotImplementedError)


def _plain(grad: Tensor) -> bool:
    """A gradient the buffer path can read: a dense float32 CPU tensor outside autograd."""
    return (
        type(grad) is Tensor
        and grad.dtype is torch.float32
        and grad.is_cpu
        and grad.layout is torch.strided
        and not grad.requires_grad
    )


def per_parameter_norms(
    named: list[tuple[str, nn.Parameter]],
) -> tuple[list[str], list[float] | None]:
    """Names and L2 norms of every gradient (on the host), from one foreach kernel.

    The one host-device sync of a check: on a GPU the norms are stacked and copied
    together; on the CPU each is read where it is (a stack would cost an allocation).
    Where every gradient present is one the compiled read takes (dense float32 on the
    CPU), it reads them instead, so a norm has the same value whichever path reads it
    (a model with frozen layers too).
    """
    names: list[str] = []
    grads: list[Tensor] = []
    present: list[nn.Parameter] = []
    for name, param in named:
        grad = param.grad
        if grad is not None:
            names.append(name)
            grads.append(grad if grad.layout is torch.strided else _dense_values(grad))
            present.append(param)
    if not grads:
        return names, None
    first = grads[0]  # a cheap refusal of GPU and half-precision runs; the read checks all
    if first.dtype is torch.float32 and first.is_cpu and _fits_fused_read(present):
        fused = _fused_norms.norms(tuple(present), to_dlpack, Tensor)
        if fused is not None:  # the same values as the plan's fused read, whichever path asks
            return names, fused
    norms: Sequence[Tensor]
    with torch.no_grad():
        dtypes = {g.dtype for g in grads}
        if torch.float64 in dtypes:
            norms = torch._foreach_norm(grads, 2)
            if len(dtypes) > 1:
                norms = [n.double() for n in norms]
        elif dtypes == {torch.float32}:
            norms = torch._foreach_norm(grads, 2)
        else:  # dtype=float32: fp16/bf16 norms would overflow or lose precision
            norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        if any(type(n) is not Tensor for n in norms):
            # a sharded parameter's norm is a partial sum per rank: full_tensor()
            # all-reduces it (a collective: every rank checks), so every rank sees the
            # whole gradient's norm
            norms = [full_value(n) for n in norms]
        if norms[0].device.type == "cpu":
            return names, [n.item() for n in norms]
        return names, torch.stack(norms).tolist()


def _fits_fused_read(params: Sequence[nn.Parameter]) -> bool:
    """Whether the compiled read is built and faster than torch's kernels for ``params``."""
    if _fused_norms is None:
        return False
    # torch's threaded kernels read a large model faster than the single-threaded loop
    return torch.get_num_threads() == 1 or sum(p.numel() for p in params) <= _FUSED_MAX_ELEMENTS


def _dense_values(grad: Tensor) -> Tensor:
    """A dense tensor with a sparse gradient's norm (``nn.Embedding(sparse=True)``).

    Norm kernels take dense tensors only; an uncoalesced COO gradient repeats indices
    whose values add up, so it is coalesced first.
    """
    if grad.layout is torch.sparse_coo:
        return grad.coalesce().values()
    return grad.to_dense()
