"""Metrics: fan-out to loggers and the tracker, drift, confidence and alerts."""

from trainforge.engine.metrics._alerts import Alert, AlertConfig
from trainforge.engine.metrics._confidence import ConfidenceMetrics, confidence_metrics
from trainforge.engine.metrics._drift import (
    DatasetProfile,
    DriftMetrics,
    jensen_shannon,
    profile_dataset,
)
from trainforge.engine.metrics._engine import MetricsEngine
from trainforge.engine.metrics._heatmap import heatmap_argmax, pixel_distance

__all__ = [
    "Alert",
    "AlertConfig",
    "ConfidenceMetrics",
    "DatasetProfile",
    "DriftMetrics",
    "MetricsEngine",
    "confidence_metrics",
    "heatmap_argmax",
    "jensen_shannon",
    "pixel_distance",
    "profile_dataset",
]
