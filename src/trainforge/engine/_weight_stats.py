"""Per-layer weight norms and update-to-weight ratios, with fused ops and one sync.

Plain torch, used by both loop drivers: :class:`WeightStatistics` snapshots the weights before an
optimizer step and, after it, reports ``weights/<layer>/norm`` and
``weights/<layer>/update_ratio`` (``||w_after - w_before|| / ||w_before||``). A ratio far
above ~1e-3 means the learning rate is large for that layer; far below, that it barely
learns. The snapshot is a copy of every parameter, so take it only on logging steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainforge.engine._sharding import full_value

__all__ = ["WeightStatistics"]


class WeightStatistics:
    """Weight norms and update ratios across one optimizer step.

    Examples:
        >>> layer = nn.Linear(2, 1)
        >>> stats = WeightStatistics()
        >>> stats.snapshot(layer)
        >>> with torch.no_grad():
        ...     _ = layer.weight.mul_(2.0)
        >>> round(stats.after_step(layer)["weights/weight/update_ratio"], 6)
        1.0
    """

    def __init__(self) -> None:
        self._before: list[Tensor] | None = None

    @property
    def has_snapshot(self) -> bool:
        """True between :meth:`snapshot` and :meth:`after_step`."""
        return self._before is not None

    def snapshot(self, model: nn.Module) -> None:
        """Copy the trainable weights (call just before the optimizer step)."""
        self._before = [p.detach().clone() for p in model.parameters() if p.requires_grad]

    def after_step(self, model: nn.Module) -> dict[str, float]:
        """``weights/<name>/norm`` always; ``update_ratio`` too after :meth:`snapshot`."""
        named = [(n, p.detach()) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            return {}
        names = [n for n, _ in named]
        after = [p for _, p in named]
        norms = [full_value(n) for n in torch._foreach_norm(after, 2, dtype=torch.float32)]
        rows = [torch.stack(norms)]
        before, self._before = self._before, None
        if before is not None and len(before) == len(after):
            deltas = torch._foreach_sub(after, before)
            update = torch.stack(
                [full_value(n) for n in torch._foreach_norm(deltas, 2, dtype=torch.float32)]
            )
            base = torch.stack(
                [full_value(n) for n in torch._foreach_norm(before, 2, dtype=torch.float32)]
            )
            rows.append(update / base.clamp_min(1e-12))
        values = torch.stack(rows).cpu().tolist()  # the one host-device sync
        metrics = {f"weights/{n}/norm": v for n, v in zip(names, values[0])}
        if len(values) > 1:
            metrics.update({f"weights/{n}/update_ratio": v for n, v in zip(names, values[1])})
        return metrics
