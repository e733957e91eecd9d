"""Built-in tasks for the embedded default: models, datasets, metrics, no downloads.

``digits`` (the default), ``tiny_lm``, ``shapes_seg`` and ``ball_heatmap`` each pair a
:class:`~trainforge.engine.TaskSpec` with a small model, an in-memory dataset and a
metric, and each has a config template (``trainforge train --template NAME``). The
composition root calls :func:`build_model`, :func:`build_datasets` and
:func:`task_metrics`; user models and datasets plug in by import path.
"""

from trainforge.zoo._conv import ConvEncoderDecoder, HeatmapNet, SegNet
from trainforge.zoo._dataset import TensorDictDataset
from trainforge.zoo._datasets import DATASETS, build_datasets, list_datasets
from trainforge.zoo._gpt import TinyGPT
from trainforge.zoo._imports import ImportPathError
from trainforge.zoo._metrics import (
    TASK_METRICS,
    accuracy,
    heatmap_argmax,
    mean_iou,
    perplexity,
    pixel_error,
    task_metrics,
)
from trainforge.zoo._mlp import MLP
from trainforge.zoo._models import MODELS, build_model, list_models, model_recipe
from trainforge.zoo._tasks import TASKS, ZooTask, get_task_spec, get_zoo_task, list_zoo_tasks
from trainforge.zoo._text import CharVocab

__all__ = [
    "DATASETS",
    "MLP",
    "MODELS",
    "TASKS",
    "TASK_METRICS",
    "CharVocab",
    "ConvEncoderDecoder",
    "HeatmapNet",
    "ImportPathError",
    "SegNet",
    "TensorDictDataset",
    "TinyGPT",
    "ZooTask",
    "accuracy",
    "build_datasets",
    "build_model",
    "get_task_spec",
    "get_zoo_task",
    "heatmap_argmax",
    "list_datasets",
    "list_models",
    "list_zoo_tasks",
    "mean_iou",
    "model_recipe",
    "perplexity",
    "pixel_error",
    "task_metrics",
]
