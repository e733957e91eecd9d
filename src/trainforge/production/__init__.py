"""Production tools: the training dashboard and retraining triggers.

Layer 3: imports tracking, checkpoint and engine, never train or cli.
"""

from trainforge.production._dashboard import Dashboard
from trainforge.production._triggers import (
    RetrainingTriggerManager,
    TriggerDecision,
    lower_is_better,
)

__all__ = ["Dashboard", "RetrainingTriggerManager", "TriggerDecision", "lower_is_better"]
