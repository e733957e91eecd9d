"""The built-in tasks: what each learns, with which model and data, judged by what.

A :class:`ZooTask` ties a :class:`TaskSpec` to the names of its default model and
dataset and to the metrics :func:`task_metrics` reports for it. The matching config
templates (``trainforge train --template NAME``) hold the same names and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainforge.engine import TaskSpec
from trainforge.registry import Registry
from trainforge.zoo._metrics import task_metrics

__all__ = ["TASKS", "ZooTask", "get_task_spec", "get_zoo_task", "list_zoo_tasks"]

# id 0 is padding, id 1 a newline, then printable ASCII: see zoo._text.CharVocab
TINY_LM_VOCAB_SIZE = 97
SHAPE_CLASSES = ("background", "circle", "rectangle", "triangle")


@dataclass(frozen=True)
class ZooTask:
    """A built-in task.

    Args:
        spec: The task's shape.
        model: Name of the default built-in model.
        dataset: Name of the built-in dataset.
        metrics: Names of the metrics :func:`task_metrics` returns for it.
        monitor: The metric that ranks checkpoints (``val/<name>``).
        mode: ``min`` or ``max`` of the monitor.
    """

    spec: TaskSpec
    model: str
    dataset: str
    metrics: tuple[str, ...]
    monitor: str
    mode: Literal["min", "max"]

    @property
    def name(self) -> str:
        """The task name (also the template name)."""
        return self.spec.name

    def compute_metrics(self, outputs: Any, batch: Any) -> dict[str, float]:
        """This task's metrics for one batch (see :func:`task_metrics`)."""
        return task_metrics(self.spec, outputs, batch)


TASKS: Registry[ZooTask] = Registry("built-in task")
TASKS.register(
    "digits",
    ZooTask(
        TaskSpec("digits", modality="tabular", num_classes=10, input_dim=64),
        model="mlp",
        dataset="digits",
        metrics=("acc",),
        monitor="val/acc",
        mode="max",
    ),
)
TASKS.register(
    "tiny_lm",
    ZooTask(
        TaskSpec(
            "tiny_lm",
            modality="text",
            task_type="language_modeling",
            vocab_size=TINY_LM_VOCAB_SIZE,
            max_seq_len=64,
            pad_token_id=0,
        ),
        model="tiny_gpt",
        dataset="tiny_lm",
        metrics=("perplexity",),
        monitor="val/loss",
        mode="min",
    ),
)
TASKS.register(
    "shapes_seg",
    ZooTask(
        TaskSpec(
            "shapes_seg",
            modality="vision",
            task_type="segmentation",
            num_classes=len(SHAPE_CLASSES),
            image_size=(32, 32),
            in_channels=3,
            extra={"classes": list(SHAPE_CLASSES)},
        ),
        model="seg_net",
        dataset="shapes_seg",
        metrics=("miou",),
        monitor="val/miou",
        mode="max",
    ),
)
TASKS.register(
    "ball_heatmap",
    ZooTask(
        TaskSpec(
            "ball_heatmap",
            modality="heatmap",
            task_type="heatmap",
            image_size=(32, 32),
            in_channels=3,
        ),
        model="heatmap_net",
        dataset="ball_heatmap",
        metrics=("pixel_error",),
        monitor="val/pixel_error",
        mode="min",
    ),
)


def list_zoo_tasks() -> list[str]:
    """Names of the built-in tasks, sorted."""
    return TASKS.list()


def get_zoo_task(name: str) -> ZooTask:
    """The built-in task ``name`` (RegistryError with "did you mean" otherwise)."""
    return TASKS.get(name)


def get_task_spec(name: str) -> TaskSpec:
    """The TaskSpec of the built-in task ``name``.

    Examples:
        >>> get_task_spec("digits").num_classes
        10
    """
    return TASKS.get(name).spec
