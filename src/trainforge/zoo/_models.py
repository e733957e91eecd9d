"""Built-in models by name, user models by import path: :func:`build_model`.

A built-in model reads its sizes (input width, classes, vocabulary, channels) from the
:class:`TaskSpec`, so a config only names the model and its hyperparameters. A user class
(``"pkg.module:Class"``) gets exactly the config's kwargs, plus ``task_spec`` when its
constructor has a parameter of that name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainforge.engine import TaskSpec
from trainforge.errors import ConfigError, TrainforgeError
from trainforge.registry import Registry
from trainforge.zoo._conv import HeatmapNet, SegNet
from trainforge.zoo._gpt import TinyGPT
from trainforge.zoo._imports import call_with_kwargs, is_import_path, resolve_import_path
from trainforge.zoo._mlp import MLP

__all__ = ["MODELS", "BuiltinModel", "build_model", "list_models", "model_recipe"]


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in model class and the constructor arguments it takes from the TaskSpec.

    Args:
        cls: The ``nn.Module`` class.
        from_task: Constructor argument -> (TaskSpec field, fallback when the field is None;
            None means required).
    """

    cls: type[nn.Module]
    from_task: dict[str, tuple[str, Any]]

    def build(self, name: str, task_spec: TaskSpec, kwargs: dict[str, Any]) -> nn.Module:
        """Instantiate with task-derived sizes, overridden by explicit kwargs."""
        return call_with_kwargs(
            self.cls, self.constructor_kwargs(name, task_spec, kwargs), label=f"model '{name}'"
        )

    def constructor_kwargs(
        self, name: str, task_spec: TaskSpec, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Every argument :meth:`build` passes: task-derived sizes, then explicit kwargs."""
        derived: dict[str, Any] = {}
        for arg, (field, fallback) in self.from_task.items():
            if arg in kwargs:
                continue
            value = getattr(task_spec, field)
            if value is None:
                value = fallback
            if value is None:
                raise ConfigError(
                    f"model '{name}' needs task.{field} (task '{task_spec.name}' leaves it unset)",
                    key=f"task.{field}",
                    hint=f"set task.{field} or pass model.kwargs.{arg}",
                )
            derived[arg] = value
        return {**derived, **kwargs}


MODELS: Registry[BuiltinModel] = Registry("model")
MODELS.register(
    "mlp",
    BuiltinModel(MLP, {"input_dim": ("input_dim", None), "num_classes": ("num_classes", None)}),
)
MODELS.register(
    "tiny_gpt",
    BuiltinModel(
        TinyGPT, {"vocab_size": ("vocab_size", None), "max_seq_len": ("max_seq_len", None)}
    ),
    aliases=("gpt",),
)
MODELS.register(
    "seg_net",
    BuiltinModel(SegNet, {"num_classes": ("num_classes", None), "in_channels": ("in_channels", 3)}),
)
MODELS.register(
    "heatmap_net",
    BuiltinModel(HeatmapNet, {"in_channels": ("in_channels", 3)}),
    aliases=("tracknet",),
)


def list_models() -> list[str]:
    """Names of the built-in models, sorted."""
    return MODELS.list()


def build_model(name_or_import_path: str, task_spec: TaskSpec, **kwargs: Any) -> nn.Module:
    """Build a built-in model by name, or a user model from ``"pkg.module:Class"``.

    Args:
        name_or_import_path: ``mlp``, ``tiny_gpt``, ``seg_net``, ``heatmap_net``, or an
            import path of a class (or any callable returning an ``nn.Module``).
        task_spec: The task; built-in models take their sizes from it.
        **kwargs: Constructor arguments (``model.kwargs`` in the config).

    Returns:
        The model.

    Raises:
        RegistryError: Unknown built-in name (with "did you mean").
        ImportPathError: The module or attribute of an import path does not exist.
        ConfigError: A kwarg the constructor does not take, or a size the task lacks.
        TrainforgeError: The factory returned something that is not an ``nn.Module``.

    Examples:
        >>> spec = TaskSpec.classification_tiny()
        >>> build_model("mlp", spec, hidden_dims=[32]).net[0].in_features
        64
    """
    if is_import_path(name_or_import_path):
        factory: Callable[..., Any] = resolve_import_path(name_or_import_path, kind="model")
        model = call_with_kwargs(
            factory,
            kwargs,
            label=f"model '{name_or_import_path}'",
            optional={"task_spec": task_spec},
        )
    else:
        model = MODELS.get(name_or_import_path).build(name_or_import_path, task_spec, kwargs)
    if not isinstance(model, nn.Module):
        raise TrainforgeError(
            f"model '{name_or_import_path}' returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def model_recipe(
    name_or_import_path: str, task_spec: TaskSpec, **kwargs: Any
) -> tuple[str, dict[str, Any]]:
    """The class import path and constructor kwargs that rebuild :func:`build_model`'s model.

    A built-in model's sizes come from ``task_spec``: they are spelled out here, so the
    recipe rebuilds the same network without trainforge's registry (export bundles).

    Examples:
        >>> model_recipe("mlp", TaskSpec.classification_tiny(), hidden_dims=[32])
        ('trainforge.zoo._mlp:MLP', {'input_dim': 64, 'num_classes': 10, 'hidden_dims': [32]})
    """
    if is_import_path(name_or_import_path):
        return name_or_import_path, dict(kwargs)
    builtin = MODELS.get(name_or_import_path)
    path = f"{builtin.cls.__module__}:{builtin.cls.__qualname__}"
    return path, builtin.constructor_kwargs(name_or_import_path, task_spec, kwargs)
