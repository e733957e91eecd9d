"""The run's policies: framework-free objects that both loop drivers consult.

Each is a small class with plain arguments and, where it has state, ``state_dict`` /
``load_state_dict``. :class:`RunPolicies` composes them behind the events a driver has
(before/after an optimizer step, validation end, epoch end); use the parts alone in your
own loop or Lightning code (see ``trainforge.lightning`` for their callback adapters).
"""

from trainforge.engine.policies._best import BestMetric, is_improvement
from trainforge.engine.policies._cadence import CheckpointCadence
from trainforge.engine.policies._data_quality import (
    REFERENCE_PROFILE_FILE,
    ConfidenceMonitor,
    DriftMonitor,
)
from trainforge.engine.policies._early_stopping import EarlyStopping
from trainforge.engine.policies._health import HealthPolicy, PolicyName
from trainforge.engine.policies._layer_stats import LayerStatistics
from trainforge.engine.policies._lr import LrReporter
from trainforge.engine.policies._run import EpochOutcome, RunPolicies, SaveFn

__all__ = [
    "REFERENCE_PROFILE_FILE",
    "BestMetric",
    "CheckpointCadence",
    "ConfidenceMonitor",
    "DriftMonitor",
    "EarlyStopping",
    "EpochOutcome",
    "HealthPolicy",
    "LayerStatistics",
    "LrReporter",
    "PolicyName",
    "RunPolicies",
    "SaveFn",
    "is_improvement",
]
