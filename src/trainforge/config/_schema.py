"""The ``TrainingConfig`` schema: every section, every field, every default.

Defaults live here and only here; each field documents itself, and the CLI and docs read
those descriptions. Sections forbid unknown keys; the free-form ``kwargs`` mappings of
``model`` and ``data`` accept anything the user's class takes.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

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

__all__ = [
    "SECTION_MODELS",
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
    loss: str | None = Field(
        None,
        description="Loss strategy; 'model' uses the loss the model returns (chosen from "
        "task_type when unset).",
    )


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


class OptimConfig(SchemaBase):
    """Optimizer and learning-rate schedule."""

    name: Literal["adamw", "adam", "sgd", "rmsprop"] = Field("adamw", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="Weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
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
DATA_PARALLEL_STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
SHARDED_STRATEGIES = ("model_parallel", "fsdp")


class TrainerConfig(SchemaBase):
    """How training is driven."""

    engine: Literal["lightning", "plain"] = Field(
        "lightning",
        description="Loop driver: lightning (lightning.Trainer: devices, DDP, manual "
        "optimization, profiling) or plain (trainforge's own single-device loop).",
    )
    max_epochs: int | None = Field(10, gt=0, description="Stop after this many epochs.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = Field(
        "32-true", description="Numerical precision (mixed precision needs a GPU for 16)."
    )
    accelerator: str = Field("auto", description="cpu, gpu, cuda, mps or auto.")
    devices: int | str = Field(
        "auto", description="Number of devices (processes with accelerator=cpu), or auto."
    )
    strategy: str = Field(
        "auto",
        description="auto, ddp or ddp_find_unused_parameters_true (replicated model), or "
        "model_parallel (FSDP2 fully_shard, CPU or GPU: sharded model and checkpoints); the "
        "plain driver: auto, one device.",
    )
    shard_modules: list[str] = Field(
        default_factory=list,
        description="With strategy=model_parallel: class names of the submodules sharded as "
        "units (e.g. [GPT2Block]); empty: a Hugging Face model's _no_split_modules, else the "
        "layers of every nn.ModuleList.",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description="Machines taking part; each runs trainer.devices processes, started by a "
        "launcher (torchrun, SLURM srun, or MASTER_ADDR/MASTER_PORT/NODE_RANK per node).",
    )
    collective_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Seconds a process waits in a collective (gradient all-reduce, barrier, "
        "a sharded save) for the others before it fails instead of hanging.",
    )
    accumulate_grad_batches: int = Field(1, ge=1, description="Batches per optimizer step.")
    gradient_clip_val: float | None = Field(None, gt=0, description="Clip the gradient norm.")
    optimization: Literal["automatic", "manual"] = Field(
        "automatic",
        description="automatic (the plain driver steps through its GradientAccumulator).",
    )
    micro_batch_size: int | None = Field(
        None, gt=0, description="Manual mode: split each batch into chunks of this size."
    )
    limit_train_batches: float | int | None = Field(
        None, gt=0, description="Use only this many (int) or this fraction of training batches."
    )
    limit_val_batches: float | int | None = Field(
        None, ge=0, description="Use only this many (int) or this fraction of val batches."
    )
    val_check_interval: float = Field(
        1.0,
        gt=0,
        le=1.0,
        description="Validate after this fraction of each epoch (the plain driver: 1.0, the "
        "end of every epoch).",
    )
    log_every_n_steps: int = Field(10, gt=0, description="Logger write interval in steps.")
    checkpoint_every_n_steps: int | None = Field(
        None, gt=0, description="Also checkpoint every N optimizer steps (mid-epoch resume)."
    )
    enable_progress_bar: bool = Field(True, description="Show the Rich progress bar.")
    compile: bool = Field(False, description="Wrap the model in torch.compile.")

    @model_validator(mode="after")
    def _check(self) -> TrainerConfig:
        if self.max_epochs is None and self.max_steps is None:
            raise ValueError("set trainer.max_epochs or trainer.max_steps (both are unset)")
        if self.optimization == "manual" and self.accumulate_grad_batches > 1:
            raise ValueError(
                "trainer.accumulate_grad_batches > 1 conflicts with optimization=manual, which "
                "accumulates micro-batches itself; set accumulate_grad_batches=1 or use "
                "optimization=automatic"
            )
        if self.engine == "plain" and self.val_check_interval != 1.0:
            raise ValueError(
                "trainer.val_check_interval must be 1.0 with trainer.engine=plain: the plain "
                "driver validates at the end of every epoch"
            )
        if self.engine == "plain" and self.optimization == "manual":
            raise ValueError(
                "trainer.optimization=manual is a Lightning driver mode; the plain driver "
                "always steps through its GradientAccumulator (use optimization=automatic)"
            )
        if self.engine == "plain" and (
            self.strategy != "auto" or self.devices not in ("auto", 1) or self.num_nodes != 1
        ):
            raise ValueError(
                "the plain driver runs on one device: trainer.strategy must be auto, "
                "trainer.devices auto or 1 and trainer.num_nodes 1; use trainer.engine=lightning "
                "for DDP and several nodes"
            )
        if self.strategy == "fsdp":
            raise ValueError(
                "trainer.strategy='fsdp' (Lightning's FSDP1, GPU only) is not supported: use "
                "trainer.strategy=model_parallel, FSDP2 on the CPU or on GPUs"
            )
        if self.strategy not in (*DATA_PARALLEL_STRATEGIES, *SHARDED_STRATEGIES[:1]):
            raise ValueError(
                f"trainer.strategy={self.strategy!r} is not supported; use one of "
                + ", ".join((*DATA_PARALLEL_STRATEGIES, *SHARDED_STRATEGIES[:1]))
            )
        if self.shard_modules and self.strategy != "model_parallel":
            raise ValueError(
                "trainer.shard_modules needs trainer.strategy=model_parallel (nothing else "
                "shards the model)"
            )
        if self.strategy == "model_parallel" and (self.compile or self.optimization == "manual"):
            raise ValueError(
                "trainer.strategy=model_parallel runs automatic optimization without "
                "torch.compile: set trainer.compile=false and trainer.optimization=automatic"
            )
        if isinstance(self.devices, str) and self.devices != "auto":
            raise ValueError(f"trainer.devices={self.devices!r}: give a number of devices or auto")
        if self.micro_batch_size is not None and self.optimization != "manual":
            raise ValueError("trainer.micro_batch_size needs trainer.optimization=manual")
        return self


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
