"""Retraining triggers: decide from drift, performance, age and new data whether to retrain.

:meth:`RetrainingTriggerManager.check_triggers` is the decision (the seed's API: a bool and
the reasons). :meth:`RetrainingTriggerManager.evaluate_and_submit` wires it to the job
queue for a registered model: when triggered, it submits a ``train`` job with the config
of the run that trained the model, at most once per trigger window (the job's dedupe key
is the model name and the window), with the reasons stored on the job. Drift can be given
as a score, or measured here: new data is profiled and compared with the reference
profile the model's training run kept (``reference_profile.json``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainforge.errors import TrackingError
from trainforge.jobs import JobManager
from trainforge.tracking import ExperimentDB, ModelRegistry

__all__ = ["RetrainingTriggerManager", "TriggerDecision", "lower_is_better"]

_LOWER_IS_BETTER = ("loss", "error", "perplexity", "mae", "mse", "rmse", "distance", "ece")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (losses, errors, distances)."""
    name = metric.lower()
    return any(part in name for part in _LOWER_IS_BETTER)


def _timestamp(value: float | str | datetime) -> float:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return stamp.timestamp()
    if isinstance(value, str):
        try:
            return _timestamp(datetime.fromisoformat(value))
        except ValueError:
            raise TrackingError(
                f"last_train_timestamp {value!r} is not an ISO 8601 time",
                hint="e.g. '2025-11-13T00:00:00' (UTC unless it names a zone)",
            ) from None
    return float(value)


@dataclass(frozen=True)
class TriggerDecision:
    """What :meth:`RetrainingTriggerManager.evaluate_and_submit` decided and did.

    Attributes:
        triggered: Whether any trigger fired.
        reasons: One sentence per trigger that fired.
        job_id: The retraining job (new, or the one already submitted in this window).
        submitted: True when this call submitted the job.
        drift_score: The drift used (given, or measured against the reference profile).
    """

    triggered: bool
    reasons: list[str] = field(default_factory=list)
    job_id: int | None = None
    submitted: bool = False
    drift_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        return {
            "triggered": self.triggered,
            "reasons": list(self.reasons),
            "job_id": self.job_id,
            "submitted": self.submitted,
            "drift_score": self.drift_score,
        }


class RetrainingTriggerManager:
    """Retraining triggers: any threshold left ``None`` is off.

    Args:
        drift_threshold: Retrain when the Jensen-Shannon drift exceeds this (0..1).
        performance_threshold: Retrain when a metric is worse than its baseline by more
            than this fraction (0.1: 10 %); losses and errors rise, others fall.
        time_threshold_days: Retrain when the last training is older than this.
        data_volume_threshold: Retrain when more new samples than this arrived.

    Examples:
        >>> manager = RetrainingTriggerManager(drift_threshold=0.2, performance_threshold=0.1,
        ...                                    time_threshold_days=7, data_volume_threshold=10000)
        >>> should, reasons = manager.check_triggers(
        ...     current_metrics={"val_loss": 0.45}, baseline_metrics={"val_loss": 0.38},
        ...     drift_score=0.25, new_data_count=15000,
        ...     last_train_timestamp="2025-11-13T00:00:00",
        ...     now=datetime(2025, 11, 16, tzinfo=timezone.utc))
        >>> should, len(reasons)
        (True, 3)
    """

    def __init__(
        self,
        drift_threshold: float | None = 0.2,
        performance_threshold: float | None = 0.1,
        time_threshold_days: float | None = 7.0,
        data_volume_threshold: int | None = 10_000,
    ) -> None:
        for name, value in (
            ("drift_threshold", drift_threshold),
            ("performance_threshold", performance_threshold),
            ("time_threshold_days", time_threshold_days),
            ("data_volume_threshold", data_volume_threshold),
        ):
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise TrackingError(f"{name} must be a number >= 0 or None, got {value!r}")
        self.drift_threshold = drift_threshold
        self.performance_threshold = performance_threshold
        self.time_threshold_days = time_threshold_days
        self.data_volume_threshold = data_volume_threshold

    def check_triggers(
        self,
        current_metrics: Mapping[str, float] | None = None,
        baseline_metrics: Mapping[str, float] | None = None,
        drift_score: float | None = None,
        new_data_count: int | None = None,
        last_train_timestamp: float | str | datetime | None = None,
        *,
        now: float | datetime | None = None,
    ) -> tuple[bool, list[str]]:
        """Whether to retrain, and why (one reason per trigger that fired)."""
        reasons: list[str] = []
        drift = self.drift_threshold
        if drift is not None and drift_score is not None and drift_score > drift:
            reasons.append(
                f"drift: Jensen-Shannon divergence {drift_score:.4f} > "
                f"threshold {self.drift_threshold:g}"
            )
        if self.performance_threshold is not None and current_metrics and baseline_metrics:
            for key in sorted(current_metrics.keys() & baseline_metrics.keys()):
                current, baseline = float(current_metrics[key]), float(baseline_metrics[key])
                if not (math.isfinite(current) and math.isfinite(baseline)) or baseline == 0:
                    continue
                change = (current - baseline) / abs(baseline)
                worse = change if lower_is_better(key) else -change
                if worse > self.performance_threshold:
                    reasons.append(
                        f"performance: {key} {current:.4g} vs baseline {baseline:.4g} "
                        f"({worse:.1%} worse > threshold {self.performance_threshold:.1%})"
                    )
        if self.time_threshold_days is not None and last_train_timestamp is not None:
            moment = time.time() if now is None else _timestamp(now)
            days = (moment - _timestamp(last_train_timestamp)) / 86400.0
            if days > self.time_threshold_days:
                reasons.append(
                    f"time: last trained {days:.1f} days ago > threshold "
                    f"{self.time_threshold_days:g} days"
                )
        volume = self.data_volume_threshold
        if volume is not None and new_data_count is not None and new_data_count > volume:
            reasons.append(
                f"data volume: {new_data_count} new samples > threshold "
                f"{self.data_volume_threshold}"
            )
        return bool(reasons), reasons

    def evaluate_and_submit(
        self,
        jobs: JobManager,
        model: int | str,
        *,
        tag: str | None = None,
        current_metrics: Mapping[str, float] | None = None,
        drift_score: float | None = None,
        current_data: Any = None,
        new_data_count: int | None = None,
        now: float | None = None,
        window_s: float = 86_400.0,
        priority: int = 0,
        overrides: list[str] | None = None,
        dry_run: bool = False,
    ) -> TriggerDecision:
        """Check the triggers for a registered model; if any fires, submit a ``train`` job.

        The baseline is the model's registered metrics, the last training time its
        registration time, the config that of its training run. At most one job is
        submitted per model and window (``window_s`` seconds, aligned to the epoch).

        Args:
            jobs: The queue (its store holds the registry too).
            model: A model id, or a model name (with ``tag``, else its latest version).
            tag: Lifecycle tag or alias of the version to check (``production``).
            current_metrics: The model's metrics on recent data.
            drift_score: The drift, if measured elsewhere.
            current_data: New data (a dataset) to profile and compare with the model's
                reference profile, when ``drift_score`` is not given.
            new_data_count: Samples that arrived since the last training.
            now: The time of the check (default: now).
            window_s: Length of a trigger window.
            priority: Priority of the submitted job.
            overrides: ``key=value`` overrides for the retraining config.
            dry_run: Decide only; submit nothing.

        Raises:
            ModelNotFoundError: No such model.
            TrackingError: The model has no training run whose config could be retrained,
                or ``current_data`` is given but the model kept no reference profile.
        """
        moment = time.time() if now is None else now
        registry = ModelRegistry(jobs.store)
        if isinstance(model, int):
            record = registry.get_model(model)
        else:
            record = registry.get_model(name=model, tag=tag)
        if drift_score is None and current_data is not None:
            drift_score = self.measure_drift(record, current_data, jobs)
        should, reasons = self.check_triggers(
            current_metrics,
            record.get("metrics") or {},
            drift_score,
            new_data_count,
            record["created_at"],
            now=moment,
        )
        if not should or dry_run:
            return TriggerDecision(should, reasons, drift_score=drift_score)
        config = _training_config(record, jobs)
        window = int(moment // window_s)
        key = f"retrain:{record['name']}:{int(window_s)}:{window}"
        job_id = jobs.submit_once(
            "train",
            {"config": config, "overrides": list(overrides or [])},
            priority,
            reasons=reasons,
            dedupe_key=key,
        )
        if job_id is not None:
            return TriggerDecision(True, reasons, job_id, True, drift_score)
        existing = jobs.store.read(lambda c: _job_with_key(c, key))
        return TriggerDecision(True, reasons, existing, False, drift_score)

    def measure_drift(self, model: Mapping[str, Any], current_data: Any, jobs: JobManager) -> float:
        """Jensen-Shannon drift between the model's reference profile and ``current_data``."""
        from trainforge.engine.metrics import compare_profiles, load_profile, profile_dataset

        path = reference_profile_path(model, jobs)
        reference = load_profile(path)
        current = profile_dataset(current_data, reference.modality)
        threshold = self.drift_threshold if self.drift_threshold is not None else 1.0
        drift = compare_profiles(reference, current, warning=threshold, critical=threshold)
        return drift.js_divergence


def reference_profile_path(model: Mapping[str, Any], jobs: JobManager) -> Path:
    """Where a registered model's reference profile is (its metadata, else its run's files).

    Raises:
        TrackingError: The model kept none.
    """
    meta = model.get("metadata") or {}
    if meta.get("reference_profile"):  # recorded at registration (see ModelRegistry)
        path = Path(meta["reference_profile"])
        if path.is_file():
            return path
        raise TrackingError(
            f"model {model['name']} version {model['version']}: its reference profile "
            f"{path} is missing",
            path=path,
            hint="restore the training run's folder, or pass the drift score instead",
        )
    raise TrackingError(
        f"model {model['name']} version {model['version']} kept no reference data profile",
        hint="train it with callbacks.drift.enabled=true, or pass the drift score instead",
    )


def _training_config(model: Mapping[str, Any], jobs: JobManager) -> dict[str, Any]:
    run_id = model.get("training_run_id")
    config = ExperimentDB(jobs.store).get_run(run_id).get("config") if run_id else None
    if not config:
        raise TrackingError(
            f"model {model['name']} version {model['version']} has no training run with a "
            "config to retrain",
            hint="register the model with its training run (--run-id)",
        )
    return dict(config)


def _job_with_key(conn: Any, key: str) -> int | None:
    from sqlalchemy import select

    from trainforge.tracking._schema import jobs

    return conn.execute(select(jobs.c.id).where(jobs.c.dedupe_key == key)).scalar()
