"""``TrainingConfigBuilder``: build a config from Python in a readable chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainforge.config._config import TrainingConfig
from trainforge.config._loader import load_config

__all__ = ["TrainingConfigBuilder"]


class TrainingConfigBuilder:
    """Fluent construction of a :class:`TrainingConfig`; values get provenance ``override``.

    Examples:
        >>> cfg = (
        ...     TrainingConfigBuilder()
        ...     .with_preset("small")
        ...     .with_learning_rate(3e-4)
        ...     .with_batch_size(16)
        ...     .build()
        ... )
        >>> cfg.data.batch_size, cfg.provenance_of("data.batch_size").source
        (16, 'override')
    """

    def __init__(self) -> None:
        self._files: list[str | Path] = []
        self._preset: str | None = None
        self._template: str | None = None
        self._env: str | None = None
        self._values: dict[str, Any] = {}

    def from_files(self, *files: str | Path) -> TrainingConfigBuilder:
        """Start from these config files (later files win)."""
        self._files.extend(files)
        return self

    def with_preset(self, name: str) -> TrainingConfigBuilder:
        """Apply a size preset: small, medium or large."""
        self._preset = name
        return self

    def with_template(self, name: str) -> TrainingConfigBuilder:
        """Apply a task template (see ``list_templates()``)."""
        self._template = name
        return self

    def with_environment(self, name: str) -> TrainingConfigBuilder:
        """Apply the environment overlay ``name`` from the config files."""
        self._env = name
        return self

    def set(self, key: str, value: Any) -> TrainingConfigBuilder:
        """Set any dotted key, e.g. ``set("trainer.precision", "bf16-mixed")``."""
        self._values[key] = value
        return self

    def with_learning_rate(self, lr: float) -> TrainingConfigBuilder:
        """Peak learning rate."""
        return self.set("optim.lr", lr)

    def with_optimizer(self, name: str, **kwargs: Any) -> TrainingConfigBuilder:
        """Optimizer name and any other ``optim`` fields (weight_decay, betas, ...)."""
        self.set("optim.name", name)
        for key, value in kwargs.items():
            self.set(f"optim.{key}", value)
        return self

    def with_scheduler(
        self, name: str, warmup_steps: int = 0, **kwargs: Any
    ) -> TrainingConfigBuilder:
        """Learning-rate schedule with optional warmup and scheduler kwargs."""
        self.set("optim.scheduler", name).set("optim.warmup_steps", warmup_steps)
        return self.set("optim.scheduler_kwargs", kwargs) if kwargs else self

    def with_batch_size(self, batch_size: int) -> TrainingConfigBuilder:
        """Training batch size per device."""
        return self.set("data.batch_size", batch_size)

    def with_epochs(self, epochs: int) -> TrainingConfigBuilder:
        """Maximum number of epochs."""
        return self.set("trainer.max_epochs", epochs)

    def with_max_steps(self, steps: int) -> TrainingConfigBuilder:
        """Maximum number of optimizer steps."""
        return self.set("trainer.max_steps", steps)

    def with_gradient_accumulation(self, steps: int) -> TrainingConfigBuilder:
        """Batches accumulated per optimizer step."""
        return self.set("trainer.accumulate_grad_batches", steps)

    def with_gradient_clipping(self, max_norm: float) -> TrainingConfigBuilder:
        """Clip the global gradient norm."""
        return self.set("trainer.gradient_clip_val", max_norm)

    def with_precision(self, precision: str) -> TrainingConfigBuilder:
        """32-true, 16-mixed, bf16-mixed or 64-true."""
        return self.set("trainer.precision", precision)

    def with_engine(self, engine: str) -> TrainingConfigBuilder:
        """Loop driver (``plain``: trainforge's single-device loop)."""
        return self.set("trainer.engine", engine)

    def with_model(self, name: str, **kwargs: Any) -> TrainingConfigBuilder:
        """Built-in model name or import path, with constructor kwargs."""
        return self.set("model.name", name).set("model.kwargs", kwargs)

    def with_data(self, name: str, **kwargs: Any) -> TrainingConfigBuilder:
        """Built-in dataset name or import path, with factory kwargs."""
        return self.set("data.name", name).set("data.kwargs", kwargs)

    def with_seed(self, seed: int, deterministic: bool | None = None) -> TrainingConfigBuilder:
        """Seed, and optionally deterministic kernels."""
        self.set("run.seed", seed)
        return self.set("run.deterministic", deterministic) if deterministic is not None else self

    def with_output_dir(self, path: str | Path) -> TrainingConfigBuilder:
        """Parent directory of the run folders."""
        return self.set("run.output_dir", str(path))

    def with_tracking(
        self, database: str | None = None, experiment: str | None = None
    ) -> TrainingConfigBuilder:
        """Tracking store URL and experiment name."""
        if database is not None:
            self.set("tracking.database", database)
        return self.set("tracking.experiment_name", experiment) if experiment else self

    def with_wandb(
        self, project: str = "trainforge", offline: bool = True
    ) -> TrainingConfigBuilder:
        """Enable the W&B logger."""
        self.set("loggers.wandb.enabled", True).set("loggers.wandb.project", project)
        return self.set("loggers.wandb.offline", offline)

    def with_mlflow(self, tracking_uri: str | None = None) -> TrainingConfigBuilder:
        """Enable the MLflow logger."""
        self.set("loggers.mlflow.enabled", True)
        return self.set("loggers.mlflow.tracking_uri", tracking_uri) if tracking_uri else self

    def with_checkpointing(self, **kwargs: Any) -> TrainingConfigBuilder:
        """Any ``checkpoint`` fields (monitor, mode, keep_best_k, storage, ...)."""
        for key, value in kwargs.items():
            self.set(f"checkpoint.{key}", value)
        return self

    def with_export_bundle(self, formats: list[str] | None = None) -> TrainingConfigBuilder:
        """Build a serving bundle after training, in these formats."""
        self.set("export.bundle", True)
        return self.set("export.formats", formats) if formats else self

    def build(self) -> TrainingConfig:
        """Validate and return the :class:`TrainingConfig` (ConfigError lists problems)."""
        return load_config(
            *self._files,
            overrides=self._values,
            preset=self._preset,
            template=self._template,
            env=self._env,
        )
