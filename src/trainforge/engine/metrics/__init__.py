"""Metrics: fan-out to loggers and the tracker, drift, confidence and alerts."""

from trainforge.engine.metrics._alerts import Alert, AlertConfig
from trainforge.engine.metrics._confidence import ConfidenceMetrics, confidence_metrics
from trainforge.engine.metrics._drift import (
    DatasetProfile,
    DriftMetrics,
    compare_profiles,
    jensen_shannon,
    load_profile,
    profile_dataset,
    save_profile,
)
from trainforge.engine.metrics._engine import MetricsEngine
from trainforge.engine.metrics._heatmap import heatmap_argmax, pixel_distance
from trainforge.engine.metrics._writers import CSVWriter, TensorBoardWriter, logger_dir

__all__ = [
    "Alert",
    "AlertConfig",
    "CSVWriter",
    "ConfidenceMetrics",
    "DatasetProfile",
    "DriftMetrics",
    "MetricsEngine",
    "TensorBoardWriter",
    "compare_profiles",
    "confidence_metrics",
    "heatmap_argmax",
    "jensen_shannon",
    "load_profile",
    "logger_dir",
    "pixel_distance",
    "profile_dataset",
    "save_profile",
]
