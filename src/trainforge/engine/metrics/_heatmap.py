"""Heatmap localisation metrics (TrackNet-style): the peak of a heatmap vs the true pixel."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["heatmap_argmax", "pixel_distance"]


def heatmap_argmax(heatmaps: Tensor) -> Tensor:
    """``(x, y)`` pixel of the maximum of each heatmap ``[B, 1, H, W]`` -> ``[B, 2]`` float."""
    width = heatmaps.shape[-1]
    flat = heatmaps.reshape(heatmaps.shape[0], -1).argmax(dim=1)
    return torch.stack([flat % width, flat // width], dim=1).float()


def pixel_distance(heatmaps: Tensor, positions: Tensor) -> Tensor:
    """Mean Euclidean distance (pixels) between each heatmap's peak and ``(x, y)``.

    A 0-d tensor on the heatmaps' device: callers decide when to sync (``.item()``).

    Examples:
        >>> heatmap = torch.zeros(1, 1, 4, 4)
        >>> heatmap[0, 0, 1, 2] = 1.0  # row (y) 1, column (x) 2
        >>> float(pixel_distance(heatmap, torch.tensor([[2.0, 4.0]])))
        3.0
    """
    return (heatmap_argmax(heatmaps) - positions.float()).norm(dim=1).mean()
