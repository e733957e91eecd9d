"""Losses for images: classification / per-pixel segmentation, and heatmap regression."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from trainforge.engine.losses.base import LossInputs, LossStrategyRegistry, extract_logits, require
from trainforge.engine.losses.classification import _CrossEntropy

__all__ = ["HeatmapLoss", "VisionLoss"]


@LossStrategyRegistry.register(
    "vision", aliases=("vision_classification", "image_classification", "segmentation")
)
class VisionLoss(_CrossEntropy):
    """Cross-entropy for image classification and semantic segmentation.

    Shapes: logits ``[B, C]`` with labels ``[B]`` (classification), or logits
    ``[B, C, H, W]`` with labels ``[B, H, W]`` (one class id per pixel; pixels labelled
    ``ignore_index`` are skipped, so a "void" border class costs nothing).

    Args:
        class_weights: Per-class weights (e.g. to up-weight thin structures).
        label_smoothing: Passed to :func:`torch.nn.functional.cross_entropy`.
        ignore_index: Label value that contributes nothing.
    """

    name = "vision"

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the mean cross-entropy over images or valid pixels."""
        logits = extract_logits(outputs)
        labels = require(batch, "labels", self.name)
        if logits.dim() != labels.dim() + 1:
            raise ValueError(
                f"vision loss expects logits [B, C] with labels [B], or [B, C, H, W] with "
                f"[B, H, W]; got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        return self._cross_entropy(logits, labels)


@LossStrategyRegistry.register("heatmap", aliases=("keypoint_heatmap",))
class HeatmapLoss:
    """Pixel-wise loss for heatmap targets (TrackNet-style ball / keypoint localisation).

    The model outputs logits (before the sigmoid), target heatmaps hold values in
    ``[0, 1]`` (a Gaussian blob around each object, 1 at its centre); a channel
    dimension of 1 may be present on either side.

    Variants:
        ``bce``: binary cross-entropy with logits; ``pos_weight`` multiplies the positive
        term, which offsets how few pixels belong to the object.
        ``focal``: the penalty-reduced focal loss of CenterNet: for centre pixels
        (target = 1) ``-(1 - p)**alpha * log(p)``; elsewhere
        ``-(1 - y)**beta * p**alpha * log(1 - p)``, so pixels near a centre are barely
        penalised; the sum is divided by the number of centres (at least 1).

    Args:
        variant: ``bce`` or ``focal``.
        pos_weight: Weight of positive pixels in ``bce``.
        alpha: Focusing exponent of ``focal``.
        beta: Exponent reducing the penalty near centres in ``focal``.

    Examples:
        >>> loss = HeatmapLoss(variant="focal")
        >>> float(loss(torch.zeros(1, 4, 4), {"labels": torch.zeros(1, 4, 4)})) > 0
        True
    """

    name = "heatmap"

    def __init__(
        self,
        *,
        variant: Literal["bce", "focal"] = "bce",
        pos_weight: float | None = None,
        alpha: float = 2.0,
        beta: float = 4.0,
    ) -> None:
        if variant not in ("bce", "focal"):
            raise ValueError(f"HeatmapLoss variant must be 'bce' or 'focal', got {variant!r}")
        self.variant = variant
        self.pos_weight = pos_weight
        self.alpha = alpha
        self.beta = beta

    def __call__(self, outputs: Any, batch: LossInputs) -> Tensor:
        """Return the heatmap loss of the chosen variant."""
        logits = extract_logits(outputs)
        target = require(batch, "labels", self.name).to(logits.dtype)
        logits, target = _match_channels(logits, target)
        if self.variant == "bce":
            weight = None
            if self.pos_weight is not None:
                weight = torch.tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
            return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
        return self._focal(logits, target)

    def _focal(self, logits: Tensor, target: Tensor) -> Tensor:
        # log-sigmoid form: stable for large |logits| where sigmoid saturates
        log_p = F.logsigmoid(logits)
        log_not_p = F.logsigmoid(-logits)
        p = log_p.exp()
        centre = target >= 1.0
        pos = (1 - p).pow(self.alpha) * log_p
        neg = (1 - target).pow(self.beta) * p.pow(self.alpha) * log_not_p
        per_pixel = torch.where(centre, pos, neg)
        num_centres = centre.sum().clamp(min=1)
        return -per_pixel.sum() / num_centres

    def __repr__(self) -> str:
        return f"HeatmapLoss(variant={self.variant!r})"


def _match_channels(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Drop a singleton channel dimension so ``[B, 1, H, W]`` meets ``[B, H, W]``."""
    if logits.dim() == target.dim() + 1 and logits.size(1) == 1:
        logits = logits.squeeze(1)
    elif target.dim() == logits.dim() + 1 and target.size(1) == 1:
        target = target.squeeze(1)
    if logits.shape != target.shape:
        raise ValueError(
            f"heatmap logits {tuple(logits.shape)} do not match targets {tuple(target.shape)}"
        )
    return logits, target
