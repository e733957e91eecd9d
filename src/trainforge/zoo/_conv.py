"""Small convolutional encoder-decoders for dense prediction (segmentation, heatmaps).

One U-Net-shaped network serves both zoo vision tasks: ``seg_net`` predicts one logit
per class and pixel, ``heatmap_net`` (TrackNet-style) reads a stack of consecutive frames
as channels and predicts a single heatmap logit per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvEncoderDecoder", "HeatmapNet", "SegNet"]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvEncoderDecoder(nn.Module):
    """Encoder (conv blocks + max-pool) and decoder (upsample + skip connections).

    Args:
        in_channels: Input channels.
        out_channels: Output channels (logits per pixel).
        widths: Channels of each encoder level; the input is pooled ``len(widths) - 1``
            times, so height and width must be divisible by ``2 ** (len(widths) - 1)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, widths: Sequence[int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("widths needs at least one level")
        self.downsampling = 2 ** (len(widths) - 1)
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(_conv_block(previous, width))
            previous = width
        self.decoders = nn.ModuleList(
            _conv_block(widths[i + 1] + widths[i], widths[i])
            for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` for inputs ``[B, in_channels, H, W]``."""
        height, width = inputs.shape[-2:]
        if height % self.downsampling or width % self.downsampling:
            raise ValueError(
                f"input size {height}x{width} must be divisible by {self.downsampling}"
            )
        skips = []
        x = inputs
        for index, encoder in enumerate(self.encoders):
            if index:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


class SegNet(ConvEncoderDecoder):
    """Semantic segmentation: ``[B, C, H, W]`` images -> ``[B, num_classes, H, W]`` logits.

    Examples:
        >>> SegNet(num_classes=4)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64)
    ) -> None:
        super().__init__(in_channels, num_classes, widths)


class HeatmapNet(ConvEncoderDecoder):
    """TrackNet-style localisation: stacked frames ``[B, F, H, W]`` -> ``[B, 1, H, W]`` logits.

    Examples:
        >>> HeatmapNet(in_channels=3)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__(in_channels, 1, widths)
