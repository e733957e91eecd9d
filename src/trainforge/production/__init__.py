"""Production tools: export bundles, attention patching, retraining triggers and the
training dashboard.

Layer 3: imports tracking, checkpoint and engine, never train or cli.
"""

from trainforge.production._attention import (
    ATTENTION_PATCHERS,
    AttentionPatcher,
    FlashAttentionWrapper,
)
from trainforge.production._dashboard import Dashboard
from trainforge.production._export import (
    ExportBundle,
    check_formats,
    create_export_bundle,
    example_inputs,
    read_bundle,
    verify_bundle,
)
from trainforge.production._export_formats import FORMATS, FormatResult, ModelRecipe
from trainforge.production._triggers import (
    RetrainingTriggerManager,
    TriggerDecision,
    lower_is_better,
)

__all__ = [
    "ATTENTION_PATCHERS",
    "FORMATS",
    "AttentionPatcher",
    "Dashboard",
    "ExportBundle",
    "FlashAttentionWrapper",
    "FormatResult",
    "ModelRecipe",
    "RetrainingTriggerManager",
    "TriggerDecision",
    "check_formats",
    "create_export_bundle",
    "example_inputs",
    "lower_is_better",
    "read_bundle",
    "verify_bundle",
]
