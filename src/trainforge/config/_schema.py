"""The ``TrainingConfig`` schema: every section, every field, every default.

Defaults live here and only here; each field documents itself, and the CLI and docs read
those descriptions. Sections forbid unknown keys; the free-form ``kwargs`` mappings of
``model`` and ``data`` accept anything the user's class takes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from trainforge.config._schema_base import SchemaBase
from trainforge.config._schema_callbacks import (
    CallbacksConfig,
    EarlyStoppingConfig,
    GradientHealthConfig,
    LoggersConfig,
    LrMonitorConfig,
    MonitoringConfig,
    ProfilerConfig,
    ProfilerSchedule,
)
from trainforge.config._schema_trainer import (
    DATA_PARALLEL_STRATEGIES,
    SHARDED_STRATEGIES,
    TrainerConfig,
)

__all__ = [
    "DATA_PARALLEL_STRATEGIES",
    "SECTION_MODELS",
    "SHARDED_STRATEGIES",
    "CallbacksConfig",
    "CheckpointConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "ExportConfig",
    "GradientHealthConfig",
    "LoggersConfig",
    "LrMonitorConfig",
    "ModelConfig",
    "MonitoringConfig",
    "OptimConfig",
    "ProfilerConfig",
    "ProfilerSchedule",
    "RunConfig",
    "SchemaBase",
    "TaskConfig",
    "TrackingConfig",
    "TrainerConfig",
]


class RunConfig(SchemaBase):
    """Identity and reproducibility of one run."""

    name: str | None = Field(None, description="Run name; the run id is used when unset.")
    seed: int = Field(42, ge=0, lt=2**32, description="Seed for python, numpy and torch.")
    deterministic: bool = Field(
        False, description="Use deterministic kernels (bit-exact resume; slower)."
    )
    output_dir: str = Field("outputs", description="Parent directory of every run's folder.")
    tags: list[str] = Field(default_factory=list, description="Free-form labels of the run.")
    notes: str | None = Field(None, description="Free-form notes stored with the run.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the trainforge logger."
    )


class TaskConfig(SchemaBase):
    """What is learned: modality, task type and sizes."""

    name: str = Field("digits", description="Task name (a built-in task or your own label).")
    modality: Literal["text", "vision", "tabular", "heatmap"] = Field(
        "tabular", description="Input modality."
    )
    task_type: str = Field(
        "classification",
        description="classification, language_modeling, segmentation, heatmap, regression.",
    )
    num_classes: int | None = Field(10, gt=0, description="Number of classes, if any.")
    vocab_size: int | None = Field(None, gt=0, description="Vocabulary size for text tasks.")
    max_seq_len: int | None = Field(None, gt=0, description="Maximum sequence length.")
    image_size: list[int] | None = Field(None, description="Image size [height, width].")
    input_dim: int | None = Field(None, gt=0, description="Input feature size (tabular).")
    pad_token_id: int | None = Field(
        None,
        ge=0,
        description="Padding token id of text batches: the text collator pads with it and "
        "the language-modeling loss ignores labels equal to it unless the labels already "
        "mark ignored positions with -100. Unset: a built-in task's own, else taken from "
        "the tokenizer of a DataLoader's TextCollator, else none (no id ignored).",
    )
    loss: str | None = Field(
        None,
        description="Loss strategy; 'model' uses the loss the model returns (chosen from "
        "task_type when unset).",
    )

    @field_validator("pad_token_id", mode="before")
    @classmethod
    def _integer_pad_id(cls, value: Any) -> Any:
        # pydantic would read true as 1 and 2.0 as 2: a token id is written as an integer
        # (strings are an interpolation's or a variable's text, parsed by pydantic)
        if isinstance(value, (bool, float)):
            raise ValueError(f"must be an integer token id, got {value!r}")
        return value

    @model_validator(mode="after")
    def _pad_id_in_vocabulary(self) -> TaskConfig:
        pad, vocab = self.pad_token_id, self.vocab_size
        if pad is not None and vocab is not None and pad >= vocab:
            raise ValueError(
                f"pad_token_id={pad} is not a token id of a vocabulary of vocab_size={vocab} "
                f"(0 to {vocab - 1}): set task.pad_token_id to the tokenizer's pad id"
            )
        return self


class ModelConfig(SchemaBase):
    """The network: a built-in name or an import path ``pkg.module:Class``."""

    name: str = Field("mlp", description="Built-in model name or 'pkg.module:Class'.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the model constructor."
    )
    input_keys: dict[str, str] = Field(
        default_factory=dict,
        description="forward() parameter -> batch key; unset: batch keys matching "
        "forward()'s parameters (or 'inputs') are passed.",
    )
    sdpa: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Switch attention layers to torch's scaled_dot_product_attention "
        "(FlashAttentionWrapper), each switch verified on a sample batch: auto keeps what "
        "verifies, on fails unless every known attention layer runs SDPA, off changes nothing.",
    )

    @field_validator("sdpa", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on / off as a boolean
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class DataConfig(SchemaBase):
    """The data: a built-in dataset or an import path, and how it is loaded."""

    name: str = Field("digits", description="Built-in dataset name or 'pkg.module:factory'.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the dataset factory."
    )
    batch_size: int = Field(64, gt=0, description="Training batch size (per device).")
    global_batch_size: int | None = Field(
        None,
        gt=0,
        description="Samples per optimizer step over every process: when set, it must equal "
        "batch_size x processes (num_nodes x devices) x accumulate_grad_batches.",
    )
    val_batch_size: int | None = Field(
        None, gt=0, description="Validation batch size; batch_size when unset."
    )
    val_split: float = Field(
        0.2, gt=0, lt=1, description="Fraction held out for validation (built-in data)."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    pin_memory: bool = Field(False, description="Pin host memory (only used with CUDA).")
    drop_last: bool = Field(False, description="Drop the last incomplete training batch.")
    shuffle: bool = Field(True, description="Shuffle the training data every epoch.")
    collator: str = Field("default", description="Collator name: default, text or vision.")
    input_key: str | None = Field(
        None, description="Batch key passed to the model as its one positional input."
    )


# each of Adam's betas is a decay rate: 0 <= beta < 1 (torch refuses anything else)
_Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimConfig(SchemaBase):
    """Optimizer and learning-rate schedule."""

    name: Literal["adamw", "adam", "sgd", "rmsprop"] = Field("adamw", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False, description="Weight decay.")
    betas: tuple[_Beta, _Beta] = Field((0.9, 0.999), description="Adam betas.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd, rmsprop).")
    scheduler: Literal["none", "cosine", "linear", "step", "onecycle"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    scheduler_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the scheduler."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (optimizer steps).")
    warmup_ratio: float = Field(
        0.0, ge=0, lt=1, description="Warmup as a fraction of all steps (if warmup_steps=0)."
    )


# Strategies whose every process holds the whole model (rank zero can checkpoint alone).
class CheckpointConfig(SchemaBase):
    """Checkpoint saving, retention and resume validation."""

    dirpath: str | None = Field(None, description="Checkpoint directory; <run>/checkpoints.")
    monitor: str = Field("val/loss", description="Metric that ranks checkpoints.")
    mode: Literal["min", "max"] = Field("min", description="min or max of the monitor.")
    keep_best_k: int = Field(3, ge=0, description="Keep the k best by the monitor.")
    keep_last_n: int = Field(2, ge=0, description="Keep the n most recent.")
    keep_every_n_epochs: int | None = Field(None, gt=0, description="Also keep every Nth epoch.")
    save_interval_epochs: int = Field(1, gt=0, description="Save every N epochs.")
    storage: Literal["torch", "safetensors"] = Field("torch", description="Payload format.")
    compression: Literal["gzip", "zstd"] | None = Field(None, description="Payload compression.")
    verify_on_load: bool = Field(True, description="Check sha256 and size before loading.")
    mirror: str | None = Field(None, description="fsspec URL to copy checkpoints to.")
    resume_mode: Literal["strict", "warn"] = Field(
        "strict", description="On config changes at resume: refuse breaking ones, or warn."
    )


class TrackingConfig(SchemaBase):
    """Experiment tracking store."""

    enabled: bool = Field(True, description="Record the run in the tracking store.")
    database: str | None = Field(
        None, description="Store URL or file; TRAINFORGE_DB, else <output_dir>/trainforge.db."
    )
    experiment_name: str = Field("default", description="Experiment the run belongs to.")
    project_name: str = Field("trainforge", description="Project the experiment belongs to.")


ExportFormat = Literal["onnx", "torchscript", "pytorch"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
"""The artifact formats an export bundle can hold."""


class ExportConfig(SchemaBase):
    """Export after training."""

    formats: list[ExportFormat] = Field(
        default_factory=lambda: list[ExportFormat](["pytorch"]),
        min_length=1,
        description="Artifact formats of the bundle (onnx, torchscript, pytorch); also what "
        "`trainforge export` writes for this run when --format is not given.",
    )
    bundle: bool = Field(
        False,
        description="When training ends, export the best checkpoint as a checked serving "
        "bundle in <run>/export.",
    )


SECTION_MODELS: dict[str, type[SchemaBase]] = {
    "run": RunConfig,
    "task": TaskConfig,
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
    "callbacks": CallbacksConfig,
    "loggers": LoggersConfig,
    "checkpoint": CheckpointConfig,
    "tracking": TrackingConfig,
    "export": ExportConfig,
}
