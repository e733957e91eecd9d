"""Prediction confidence and calibration, computed on the device with one sync."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ConfidenceMetrics", "confidence_metrics"]


@dataclass(frozen=True)
class ConfidenceMetrics:
    """Confidence of a batch of predictions.

    Attributes:
        top1_confidence: Mean probability of the predicted class.
        top5_confidence: Mean probability mass of the five most likely classes.
        entropy: Mean prediction entropy (nats).
        accuracy: Top-1 accuracy.
        expected_calibration_error: ECE over equal-width confidence bins: the mean
            ``|accuracy - confidence|`` of each bin weighted by its share of samples.
        num_samples: Predictions scored.
    """

    top1_confidence: float
    top5_confidence: float
    entropy: float
    accuracy: float
    expected_calibration_error: float
    num_samples: int


def confidence_metrics(logits: Tensor, labels: Tensor, num_bins: int = 15) -> ConfidenceMetrics:
    """Confidence, entropy and ECE of ``logits [N, C]`` against ``labels [N]``.

    Examples:
        >>> m = confidence_metrics(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
        >>> round(m.top1_confidence, 3), m.accuracy
        (0.881, 1.0)
    """
    logits = logits.detach().float().reshape(-1, logits.size(-1))
    labels = labels.detach().reshape(-1).to(logits.device)
    probs = logits.softmax(dim=-1)
    log_probs = logits.log_softmax(dim=-1)
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).float()
    top5 = probs.topk(min(5, probs.size(-1)), dim=-1).values.sum(dim=-1)
    entropy = -(probs * log_probs).nan_to_num().sum(dim=-1)
    # bin b holds confidences in (b/B, (b+1)/B]
    bins = (confidence * num_bins).ceil().long().sub(1).clamp(0, num_bins - 1)
    conf_sum = torch.zeros(num_bins, device=logits.device).index_add_(0, bins, confidence)
    acc_sum = torch.zeros(num_bins, device=logits.device).index_add_(0, bins, correct)
    # sum over bins of (n_b / N) * |acc_b - conf_b| == sum |acc_sum_b - conf_sum_b| / N
    ece = (conf_sum - acc_sum).abs().sum() / max(len(labels), 1)
    values = torch.stack([confidence.mean(), top5.mean(), entropy.mean(), correct.mean(), ece])
    top1, top5_mean, ent, acc, ece_value = values.tolist()  # the one host-device sync
    return ConfidenceMetrics(top1, top5_mean, ent, acc, ece_value, len(labels))
