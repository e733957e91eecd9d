"""Loss strategies: one protocol, one registry, an implementation per task family.

Importing this package registers every built-in strategy in ``LossStrategyRegistry``.
"""

from trainforge.engine.losses.base import (
    LossInputs,
    LossStrategy,
    LossStrategyRegistry,
    extract_logits,
    get_loss_strategy,
)
from trainforge.engine.losses.classification import (
    ClassificationLoss,
    LanguageModelingLoss,
    RegressionLoss,
    language_model_labels,
)
from trainforge.engine.losses.vision import HeatmapLoss, VisionLoss
from trainforge.engine.losses.wrappers import ModelLoss, PEFTAwareLoss, QuantizationSafeLoss

__all__ = [
    "ClassificationLoss",
    "HeatmapLoss",
    "LanguageModelingLoss",
    "LossInputs",
    "LossStrategy",
    "LossStrategyRegistry",
    "ModelLoss",
    "PEFTAwareLoss",
    "QuantizationSafeLoss",
    "RegressionLoss",
    "VisionLoss",
    "extract_logits",
    "get_loss_strategy",
    "language_model_labels",
]
