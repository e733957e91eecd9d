"""A multilayer perceptron: the model of the default ``digits`` task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Linear -> ReLU -> Dropout blocks, then a linear classifier head.

    Args:
        input_dim: Features per sample (inputs are flattened to this size).
        num_classes: Output logits per sample.
        hidden_dims: Width of each hidden layer.
        dropout: Dropout probability after each hidden layer.

    Examples:
        >>> MLP(64, 10)(torch.zeros(2, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_dims: Sequence[int] = (128, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for inputs ``[B, ...]``."""
        return self.net(inputs.flatten(1))
