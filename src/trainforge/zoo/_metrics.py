"""Task metrics for one batch: accuracy, mean IoU, pixel error, perplexity.

:func:`task_metrics` picks the metrics from ``task_spec.task_type``, so a user task of a
known type gets them too. The metric names are bare (``acc``); the loops prefix the split
(``val/acc``). Each function returns a Python float and therefore synchronises with the
device once: call them at validation time or every N steps, not in the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.nn import functional as F

from trainforge.engine import TaskSpec, extract_logits, language_model_labels
from trainforge.engine.metrics import heatmap_argmax, pixel_distance

__all__ = [
    "TASK_METRICS",
    "accuracy",
    "heatmap_argmax",
    "mean_iou",
    "perplexity",
    "pixel_error",
    "task_metrics",
]

# The names task_metrics returns per task type (logged as val/<name>).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("acc",),
    "segmentation": ("miou",),
    "heatmap": ("pixel_error",),
    "language_modeling": ("perplexity",),
}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose arg-max logit is the label (``[B, C]`` vs ``[B]``).

    Examples:
        >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        0.5
    """
    return (logits.argmax(dim=-1) == labels).float().mean().item()


def mean_iou(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = -100
) -> float:
    """Mean intersection-over-union over the classes present in prediction or labels.

    Args:
        logits: ``[B, C, H, W]`` class logits (or ``[B, H, W]`` predicted class ids).
        labels: ``[B, H, W]`` class ids; pixels equal to ``ignore_index`` are skipped.
        num_classes: Number of classes.
        ignore_index: Label value to skip.

    Examples:
        >>> pred = torch.tensor([[[0, 1], [1, 1]]])
        >>> round(mean_iou(pred, torch.tensor([[[0, 1], [0, 1]]]), num_classes=2), 4)
        0.5833
    """
    pred = logits.argmax(dim=1) if logits.dim() == labels.dim() + 1 else logits
    valid = labels != ignore_index
    pred, target = pred[valid], labels[valid]
    # one bincount gives the whole confusion matrix
    confusion = torch.bincount(
        target * num_classes + pred, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    intersection = confusion.diag().float()
    union = confusion.sum(0).float() + confusion.sum(1).float() - intersection
    present = union > 0
    if not present.any():
        return float("nan")
    return (intersection[present] / union[present]).mean().item()


def pixel_error(heatmaps: torch.Tensor, positions: torch.Tensor) -> float:
    """Mean Euclidean distance (pixels) between each heatmap's peak and the true ``(x, y)``.

    Examples:
        >>> heatmap = torch.zeros(1, 1, 4, 4)
        >>> heatmap[0, 0, 1, 2] = 1.0  # row (y) 1, column (x) 2
        >>> pixel_error(heatmap, torch.tensor([[2.0, 4.0]]))
        3.0
    """
    return pixel_distance(heatmaps, positions).item()  # host-device sync


def perplexity(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 0) -> float:
    """``exp`` of the mean next-token cross-entropy (logits at t predict labels at t+1).

    The shift matches the language-modeling loss: ``labels`` is the input sequence itself.

    Examples:
        >>> uniform = torch.zeros(1, 3, 4)
        >>> round(perplexity(uniform, torch.tensor([[1, 2, 3]])), 4)
        4.0
    """
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=ignore_index,
    )
    return math.exp(loss.item())


def _logits(outputs: Any) -> torch.Tensor:
    return extract_logits(outputs)


def _tokens(batch: Mapping[str, Any]) -> torch.Tensor:
    """The labels a language model is scored against (its input ids when none are given)."""
    for key in ("labels", "inputs", "input_ids"):
        if isinstance(batch.get(key), torch.Tensor):
            return batch[key]
    raise KeyError(f"perplexity needs 'labels' or the input ids; the batch has {sorted(batch)}")


def task_metrics(task_spec: TaskSpec, outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of ``task_spec``'s task type for one batch.

    ``acc`` for classification, ``miou`` for segmentation, ``pixel_error`` for heatmaps
    (needs ``batch["position"]``), ``perplexity`` for language modeling; an empty dict for
    other task types.

    Args:
        task_spec: The task.
        outputs: The model's output: logits, or a mapping / object with ``logits``.
        batch: The batch the outputs came from (``labels``, and ``position`` for heatmaps).

    Returns:
        Metric name -> value.

    Examples:
        >>> spec = TaskSpec.classification_tiny(num_classes=2)
        >>> task_metrics(spec, torch.tensor([[1.0, 0.0]]), {"labels": torch.tensor([0])})
        {'acc': 1.0}
    """
    logits = _logits(outputs).detach()
    task_type = task_spec.task_type
    with torch.no_grad():
        if task_type == "classification":
            return {"acc": accuracy(logits, batch["labels"])}
        if task_type == "segmentation":
            assert task_spec.num_classes is not None  # TaskSpec validates this
            return {
                "miou": mean_iou(
                    logits, batch["labels"], task_spec.num_classes, task_spec.ignore_index
                )
            }
        if task_type == "heatmap":
            return {"pixel_error": pixel_error(logits, batch["position"])}
        if task_type == "language_modeling":
            # the positions the language-modeling loss skips are skipped here too
            ignore = task_spec.ignore_index
            tokens = language_model_labels(
                _tokens(batch),
                ignore_index=ignore,
                pad_token_id=task_spec.pad_token_id,
                attention_mask=batch.get("attention_mask"),
            )
            return {"perplexity": perplexity(logits, tokens, ignore)}
    return {}
