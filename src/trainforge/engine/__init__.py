"""The training engine's torch components, usable with or without Lightning."""

from trainforge.engine._accumulator import (
    AccumulationConflictError,
    AccumulationStats,
    GradientAccumulator,
)
from trainforge.engine._batch import (
    ForwardInputs,
    as_batch_dict,
    batch_size_of,
    forward_and_loss,
    model_loss,
)
from trainforge.engine._gradient_monitor import GradientHealth, GradientMonitor, MetricsSink
from trainforge.engine._loop import (
    BATCH_ERRORS,
    EpochResult,
    StepInfo,
    TrainingLoop,
    ValidationLoop,
    loader_length,
    raise_batch_error,
)
from trainforge.engine._optim import (
    OPTIMIZERS,
    SCHEDULES,
    ScheduleSettings,
    build_optimizer,
    build_scheduler,
)
from trainforge.engine._position import RunPosition
from trainforge.engine._sharding import shard_model, shard_units
from trainforge.engine._task import Modality, TaskSpec, TaskType
from trainforge.engine._weight_stats import WeightStatistics
from trainforge.engine.data import (
    CollatorRegistry,
    DataLoaderFactory,
    ResumableSampler,
    StreamLoader,
    TextCollator,
    VisionCollator,
)
from trainforge.engine.losses import (
    ClassificationLoss,
    HeatmapLoss,
    LanguageModelingLoss,
    LossInputs,
    LossStrategy,
    LossStrategyRegistry,
    PEFTAwareLoss,
    QuantizationSafeLoss,
    RegressionLoss,
    VisionLoss,
    extract_logits,
    get_loss_strategy,
)
from trainforge.engine.metrics import (
    Alert,
    AlertConfig,
    ConfidenceMetrics,
    DatasetProfile,
    DriftMetrics,
    MetricsEngine,
    profile_dataset,
)

__all__ = [
    "BATCH_ERRORS",
    "OPTIMIZERS",
    "SCHEDULES",
    "AccumulationConflictError",
    "AccumulationStats",
    "Alert",
    "AlertConfig",
    "ClassificationLoss",
    "CollatorRegistry",
    "ConfidenceMetrics",
    "DataLoaderFactory",
    "DatasetProfile",
    "DriftMetrics",
    "EpochResult",
    "ForwardInputs",
    "GradientAccumulator",
    "GradientHealth",
    "GradientMonitor",
    "HeatmapLoss",
    "LanguageModelingLoss",
    "LossInputs",
    "LossStrategy",
    "LossStrategyRegistry",
    "MetricsEngine",
    "MetricsSink",
    "Modality",
    "PEFTAwareLoss",
    "QuantizationSafeLoss",
    "RegressionLoss",
    "ResumableSampler",
    "RunPosition",
    "ScheduleSettings",
    "StepInfo",
    "StreamLoader",
    "TaskSpec",
    "TaskType",
    "TextCollator",
    "TrainingLoop",
    "ValidationLoop",
    "VisionCollator",
    "VisionLoss",
    "WeightStatistics",
    "as_batch_dict",
    "batch_size_of",
    "build_optimizer",
    "build_scheduler",
    "extract_logits",
    "forward_and_loss",
    "get_loss_strategy",
    "loader_length",
    "model_loss",
    "profile_dataset",
    "raise_batch_error",
    "shard_model",
    "shard_units",
]
