"""Built-in datasets by name, user datasets by import path: :func:`build_datasets`.

A built-in dataset takes its sizes (sequence length, image size, frames) from the
:class:`TaskSpec`, the same numbers the model is built from, so data and model cannot
disagree; ``data.kwargs`` only tune the data itself (sample count, noise, corpus size).
A user factory (``"pkg.module:factory"``) gets ``data.kwargs``, plus ``task_spec``,
``val_split`` and ``seed`` when its signature names them, and returns ``(train, val)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from trainforge.engine import TaskSpec
from trainforge.errors import ConfigError, TrainforgeError
from trainforge.registry import Registry
from trainforge.zoo._ball import ball_heatmap_datasets
from trainforge.zoo._digits import digits_datasets
from trainforge.zoo._imports import call_with_kwargs, is_import_path, resolve_import_path
from trainforge.zoo._shapes import shapes_seg_datasets
from trainforge.zoo._tasks import get_task_spec
from trainforge.zoo._text import tiny_lm_datasets

__all__ = ["DATASETS", "build_datasets", "list_datasets"]

DatasetPair = tuple[Dataset[Any], Dataset[Any]]
BuiltinDatasets = Callable[[TaskSpec, float, int, dict[str, Any]], DatasetPair]


def _required(spec: TaskSpec, field: str, dataset: str) -> Any:
    value = getattr(spec, field)
    if value is None:
        raise ConfigError(
            f"dataset '{dataset}' needs task.{field} (task '{spec.name}' leaves it unset)",
            key=f"task.{field}",
        )
    return value


def _digits(spec: TaskSpec, val_split: float, seed: int, kwargs: dict[str, Any]) -> DatasetPair:
    return call_with_kwargs(
        digits_datasets, {"val_split": val_split, "seed": seed, **kwargs}, label="dataset 'digits'"
    )


def _tiny_lm(spec: TaskSpec, val_split: float, seed: int, kwargs: dict[str, Any]) -> DatasetPair:
    sizes = {
        "max_seq_len": _required(spec, "max_seq_len", "tiny_lm"),
        "vocab_size": _required(spec, "vocab_size", "tiny_lm"),
    }
    return call_with_kwargs(
        tiny_lm_datasets,
        {**sizes, "val_split": val_split, "seed": seed, **kwargs},
        label="dataset 'tiny_lm'",
    )


def _shapes_seg(spec: TaskSpec, val_split: float, seed: int, kwargs: dict[str, Any]) -> DatasetPair:
    sizes = {
        "image_size": tuple(_required(spec, "image_size", "shapes_seg")),
        "num_classes": _required(spec, "num_classes", "shapes_seg"),
    }
    return call_with_kwargs(
        shapes_seg_datasets,
        {**sizes, "val_split": val_split, "seed": seed, **kwargs},
        label="dataset 'shapes_seg'",
    )


def _ball_heatmap(
    spec: TaskSpec, val_split: float, seed: int, kwargs: dict[str, Any]
) -> DatasetPair:
    sizes = {
        "image_size": tuple(_required(spec, "image_size", "ball_heatmap")),
        # the frames are the model's input channels; 3 when the task leaves it unset
        "frames": spec.in_channels or 3,
    }
    return call_with_kwargs(
        ball_heatmap_datasets,
        {**sizes, "val_split": val_split, "seed": seed, **kwargs},
        label="dataset 'ball_heatmap'",
    )


DATASETS: Registry[BuiltinDatasets] = Registry("dataset")
DATASETS.register("digits", _digits)
DATASETS.register("tiny_lm", _tiny_lm)
DATASETS.register("shapes_seg", _shapes_seg)
DATASETS.register("ball_heatmap", _ball_heatmap)


def list_datasets() -> list[str]:
    """Names of the built-in datasets, sorted."""
    return DATASETS.list()


def build_datasets(
    name_or_import_path: str,
    task_spec: TaskSpec | None,
    *,
    val_split: float,
    seed: int,
    **kwargs: Any,
) -> DatasetPair:
    """Build ``(train, val)`` datasets: a built-in by name, or a user factory by import path.

    Every built-in item is a dict ``{"inputs": Tensor, "labels": Tensor}`` (``ball_heatmap``
    adds ``"position"``). Built-ins are deterministic for a given ``seed``.

    Args:
        name_or_import_path: ``digits``, ``tiny_lm``, ``shapes_seg``, ``ball_heatmap``, or
            ``"pkg.module:factory"``.
        task_spec: The task; None uses the built-in task of the same name.
        val_split: Fraction of the items held out for validation.
        seed: Seed of generation and split.
        **kwargs: Dataset options (``data.kwargs`` in the config).

    Returns:
        ``(train, val)``.

    Raises:
        RegistryError: Unknown built-in name (with "did you mean").
        ImportPathError: The module or attribute of an import path does not exist.
        ConfigError: An option the dataset does not take, or sizes that do not fit it.
        TrainforgeError: A user factory that does not return two datasets.

    Examples:
        >>> train, val = build_datasets("digits", None, val_split=0.2, seed=0)
        >>> len(train), len(val), train[0]["inputs"].shape
        (1437, 360, torch.Size([64]))
    """
    if is_import_path(name_or_import_path):
        factory = resolve_import_path(name_or_import_path, kind="dataset")
        result = call_with_kwargs(
            factory,
            kwargs,
            label=f"dataset '{name_or_import_path}'",
            optional={"task_spec": task_spec, "val_split": val_split, "seed": seed},
        )
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TrainforgeError(
                f"dataset factory '{name_or_import_path}' must return (train, val), "
                f"got {type(result).__name__}"
            )
        return result[0], result[1]
    builder = DATASETS.get(name_or_import_path)
    spec = task_spec if task_spec is not None else get_task_spec(name_or_import_path)
    return builder(spec, val_split, seed, kwargs)
