"""Task metrics on hand-made batches."""

from __future__ import annotations

import pytest
import torch

from trainforge.engine import TaskSpec
from trainforge.zoo import (
    accuracy,
    get_task_spec,
    get_zoo_task,
    mean_iou,
    perplexity,
    pixel_error,
    task_metrics,
)


def test_accuracy():
    logits = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)


def test_mean_iou_by_hand():
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1], [0, 0, 1, 1]]])
    # class 0: 3 / 4, class 1: 4 / 5
    assert mean_iou(pred, labels, num_classes=3) == pytest.approx((3 / 4 + 4 / 5) / 2)


def test_mean_iou_from_logits_ignores_pixels_and_absent_classes():
    labels = torch.tensor([[[2, -100]]])
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 0] = 1.0  # predicts class 2 where the label is 2
    logits[0, 0, 0, 1] = 1.0  # the ignored pixel: predicting 0 there is not counted
    assert mean_iou(logits, labels, num_classes=3) == 1.0


def test_pixel_error_uses_the_heatmap_argmax_as_x_y():
    heatmaps = torch.zeros(2, 1, 8, 8)
    heatmaps[0, 0, 2, 5] = 3.0  # y=2, x=5
    heatmaps[1, 0, 7, 0] = 1.0  # y=7, x=0
    positions = torch.tensor([[5.0, 2.0], [3.0, 3.0]])
    assert pixel_error(heatmaps, positions) == pytest.approx((0.0 + 5.0) / 2)


def test_perplexity_of_a_uniform_and_a_perfect_model():
    labels = torch.tensor([[1, 2, 3, 1]])
    assert perplexity(torch.zeros(1, 4, 5), labels) == pytest.approx(5.0)
    perfect = torch.full((1, 4, 5), -1e4)
    for t in range(3):
        perfect[0, t, labels[0, t + 1]] = 1e4
    assert perplexity(perfect, labels) == pytest.approx(1.0)


def test_perplexity_skips_padding():
    labels = torch.tensor([[1, 2, 0, 0]])  # 0 is padding
    logits = torch.zeros(1, 4, 3)
    assert perplexity(logits, labels, ignore_index=0) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("task", "outputs", "batch", "expected"),
    [
        (
            "digits",
            torch.eye(10)[:4],
            {"labels": torch.tensor([0, 1, 2, 0])},
            {"acc": 0.75},
        ),
        (
            "shapes_seg",
            torch.zeros(1, 4, 2, 2),  # argmax -> class 0 everywhere
            {"labels": torch.zeros(1, 2, 2, dtype=torch.long)},
            {"miou": 1.0},
        ),
        (
            "ball_heatmap",
            {"logits": torch.nn.functional.one_hot(torch.tensor([9]), 16).view(1, 1, 4, 4)},
            {"labels": torch.zeros(1, 1, 4, 4), "position": torch.tensor([[1.0, 2.0]])},
            {"pixel_error": 0.0},  # index 9 is row 2, column 1
        ),
        (
            "tiny_lm",
            torch.zeros(2, 5, 97),
            {"labels": torch.ones(2, 5, dtype=torch.long)},
            {"perplexity": 97.0},
        ),
    ],
)
def test_task_metrics_per_task(task, outputs, batch, expected):
    spec = get_task_spec(task)
    assert task_metrics(spec, outputs, batch) == pytest.approx(expected)
    assert set(expected) == set(get_zoo_task(task).metrics)
    assert get_zoo_task(task).compute_metrics(outputs, batch) == pytest.approx(expected)


def test_task_metrics_for_a_type_without_metrics_is_empty():
    spec = TaskSpec("custom", task_type="regression")
    assert task_metrics(spec, torch.zeros(2, 1), {"labels": torch.zeros(2, 1)}) == {}


def test_task_metrics_rejects_unknown_outputs():
    with pytest.raises(TypeError, match="logits"):
        task_metrics(get_task_spec("digits"), [1, 2], {"labels": torch.zeros(1)})


def test_monitor_of_each_task_is_one_of_its_metrics_or_the_loss():
    for name in ("digits", "tiny_lm", "shapes_seg", "ball_heatmap"):
        task = get_zoo_task(name)
        assert task.monitor in {"val/loss", *(f"val/{m}" for m in task.metrics)}
