"""Config sections of what runs beside training: ``callbacks.*`` and ``loggers.*``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from trainforge.config._schema_base import SchemaBase

__all__ = [
    "CallbacksConfig",
    "CometLoggerConfig",
    "ConfidenceConfig",
    "CsvLoggerConfig",
    "DriftConfig",
    "EarlyStoppingConfig",
    "GradientHealthConfig",
    "LoggersConfig",
    "LrMonitorConfig",
    "MlflowLoggerConfig",
    "MonitoringConfig",
    "ProfilerConfig",
    "ProfilerSchedule",
    "TensorBoardLoggerConfig",
    "WandbLoggerConfig",
]


class MonitoringConfig(SchemaBase):
    """Per-layer gradient and weight statistics (TrainingMonitor)."""

    enabled: bool = Field(True, description="Log gradient and weight statistics.")
    log_gradients: bool = Field(True, description="Per-layer gradient norms.")
    log_weights: bool = Field(True, description="Per-layer weight norms and update ratios.")
    log_frequency: int = Field(50, gt=0, description="Compute every N optimizer steps.")
    histogram: bool = Field(False, description="Also log histograms (costly).")


class GradientHealthConfig(SchemaBase):
    """NaN/Inf, vanishing and exploding gradient detection."""

    enabled: bool = Field(True, description="Check gradient health every step.")
    vanishing_threshold: float = Field(1e-7, ge=0, description="Norm below this is vanishing.")
    explosion_threshold: float = Field(1e3, gt=0, description="Norm above this is exploding.")
    max_consecutive_failures: int = Field(
        5, gt=0, description="Stop with a diagnosis after this many unhealthy steps in a row."
    )
    policy: Literal["stop", "skip", "warn"] = Field(
        "stop", description="On an unhealthy step: stop after N, skip the step, or only warn."
    )


class ProfilerSchedule(SchemaBase):
    """torch.profiler schedule: wait, warmup, active steps, repeated."""

    wait: int = Field(1, ge=0, description="Steps skipped before warmup.")
    warmup: int = Field(1, ge=0, description="Warmup steps (recorded, discarded).")
    active: int = Field(3, gt=0, description="Recorded steps.")
    repeat: int = Field(1, ge=0, description="Cycles (0 = until the end).")


class ProfilerConfig(SchemaBase):
    """Profiling with Lightning's profilers."""

    enabled: bool = Field(False, description="Run a profiler.")
    kind: Literal["simple", "advanced", "pytorch"] = Field("pytorch", description="Profiler.")
    schedule: ProfilerSchedule = Field(default_factory=ProfilerSchedule)
    trace_dir: str = Field("${run.output_dir}/profiler", description="Where traces go.")
    memory: bool = Field(False, description="Record memory (pytorch profiler).")


class EarlyStoppingConfig(SchemaBase):
    """Stop when the monitored metric stops improving."""

    enabled: bool = Field(False, description="Use early stopping.")
    monitor: str = Field("val/loss", description="Metric to watch.")
    mode: Literal["min", "max"] = Field("min", description="min or max.")
    patience: int = Field(5, ge=0, description="Validations without improvement.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts.")


class LrMonitorConfig(SchemaBase):
    """Log learning rates as ``lr/<group>``."""

    enabled: bool = Field(True, description="Log learning rates.")
    logging_interval: Literal["step", "epoch"] = Field("step", description="step or epoch.")


class DriftConfig(SchemaBase):
    """Data drift: training data profiled once, compared with validation data (or another)."""

    enabled: bool = Field(False, description="Profile the data and log drift/<feature>/jsd.")
    dataset: str | None = Field(
        None,
        description="Data to compare with the training data: None for the validation split, "
        "else a data name or 'pkg.module:factory' (built like data.name; its training part).",
    )
    dataset_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Options of callbacks.drift.dataset."
    )
    warning: float = Field(0.1, ge=0, le=1, description="JS divergence of a 'warning' alert.")
    critical: float = Field(0.2, ge=0, le=1, description="JS divergence of a 'critical' alert.")
    max_samples: int = Field(1000, ge=1, description="Samples profiled per dataset.")

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.warning > self.critical:
            raise ValueError(
                f"callbacks.drift.warning ({self.warning}) must not exceed "
                f"callbacks.drift.critical ({self.critical})"
            )
        return self


class ConfidenceConfig(SchemaBase):
    """Prediction confidence and calibration of classification outputs on validation."""

    enabled: bool = Field(False, description="Log val/ece, val/top1_confidence and val/entropy.")
    bins: int = Field(15, ge=1, description="Equal-width confidence bins of the ECE.")
    ece_threshold: float | None = Field(
        None, ge=0, le=1, description="Raise a 'calibration' alert above this ECE (None: never)."
    )


class CallbacksConfig(SchemaBase):
    """Monitoring, health checks, profiling, early stopping, drift and confidence."""

    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    gradient_health: GradientHealthConfig = Field(default_factory=GradientHealthConfig)
    profiler: ProfilerConfig = Field(default_factory=ProfilerConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    lr_monitor: LrMonitorConfig = Field(default_factory=LrMonitorConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    confidence: ConfidenceConfig = Field(default_factory=ConfidenceConfig)


class CsvLoggerConfig(SchemaBase):
    """CSV metrics file."""

    enabled: bool = Field(True, description="Write metrics.csv.")
    save_dir: str = Field("${run.output_dir}", description="Directory of the logs.")


class TensorBoardLoggerConfig(SchemaBase):
    """TensorBoard event files."""

    enabled: bool = Field(True, description="Write TensorBoard event files.")
    save_dir: str = Field("${run.output_dir}", description="Directory of the logs.")


class WandbLoggerConfig(SchemaBase):
    """Weights & Biases (pip install 'trainforge[wandb]')."""

    enabled: bool = Field(False, description="Log to W&B.")
    project: str = Field("trainforge", description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (team or user).")
    offline: bool = Field(True, description="Write locally; sync later with 'wandb sync'.")
    save_dir: str = Field("${run.output_dir}", description="Directory of the local files.")


class MlflowLoggerConfig(SchemaBase):
    """MLflow (pip install 'trainforge[mlflow]')."""

    enabled: bool = Field(False, description="Log to MLflow.")
    experiment_name: str = Field("trainforge", description="MLflow experiment.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; a SQLite file in the run folder when unset."
    )
    save_dir: str = Field("${run.output_dir}", description="Directory of local artifacts.")


class CometLoggerConfig(SchemaBase):
    """Comet (pip install 'trainforge[comet]')."""

    enabled: bool = Field(False, description="Log to Comet.")
    project: str = Field("trainforge", description="Comet project.")
    offline: bool = Field(True, description="Write an offline archive instead of uploading.")
    save_dir: str = Field("${run.output_dir}", description="Directory of offline archives.")


class LoggersConfig(SchemaBase):
    """Experiment loggers; any combination may be enabled at once."""

    csv: CsvLoggerConfig = Field(default_factory=CsvLoggerConfig)
    tensorboard: TensorBoardLoggerConfig = Field(default_factory=TensorBoardLoggerConfig)
    wandb: WandbLoggerConfig = Field(default_factory=WandbLoggerConfig)
    mlflow: MlflowLoggerConfig = Field(default_factory=MlflowLoggerConfig)
    comet: CometLoggerConfig = Field(default_factory=CometLoggerConfig)
