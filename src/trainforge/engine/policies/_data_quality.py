"""Drift and confidence during training: the same decisions on both loop drivers.

:class:`DriftMonitor` profiles the training data once (``profile_dataset``), compares it
with the validation split (or a named drift dataset) by Jensen-Shannon divergence per
feature, and reports ``drift/<feature>/jsd`` with every validation; a divergence at or
above the warning / critical threshold raises a ``data_drift`` alert once per run. The
reference profile is written to the run folder (``reference_profile.json``) so a
registered model keeps it for later trigger checks.

:class:`ConfidenceMonitor` sees every validation batch's logits (it wraps the task's
``metric_fn``, which both drivers call on each validation batch), accumulates confidence
bins on the device, and at the end of the validation reports ``val/ece``,
``val/top1_confidence`` and ``val/entropy`` over the whole validation set (one host sync);
an ECE above its threshold raises a ``calibration`` alert. In a data-parallel run each
rank sees its share of the validation batches: the sums and bins are added up over the
ranks before the values are computed, so they are the whole set's. Drift needs no
reduction: rank zero profiles the whole training and validation datasets (not a rank's
share), so its divergences are those of a single-process run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from trainforge.engine.losses import extract_logits
from trainforge.engine.metrics import (
    Alert,
    DatasetProfile,
    DriftMetrics,
    compare_profiles,
    profile_dataset,
    save_profile,
)
from trainforge.records import REFERENCE_PROFILE_FILE

__all__ = ["REFERENCE_PROFILE_FILE", "ConfidenceMonitor", "DriftMonitor"]

logger = logging.getLogger(__name__)

MetricFn = Callable[[Any, Mapping[str, Any]], Mapping[str, float]]


class DriftMonitor:
    """Jensen-Shannon drift between the training data and the data a model will meet.

    Args:
        reference: The training data (a dataset).
        current: The data to compare with it (the validation split, or a drift dataset).
        modality: How to profile them (``tabular``, ``vision``, ``heatmap``, ``text``).
        warning: Divergence of a ``warning`` (0..1).
        critical: Divergence of a ``critical`` (0..1).
        max_samples: Samples profiled per dataset.
    """

    def __init__(
        self,
        reference: Any,
        current: Any,
        *,
        modality: str,
        warning: float = 0.1,
        critical: float = 0.2,
        max_samples: int = 1000,
    ) -> None:
        self.reference_data = reference
        self.current_data = current
        self.modality = modality
        self.warning = warning
        self.critical = critical
        self.max_samples = max_samples
        self.reference: DatasetProfile | None = None
        self.result: DriftMetrics | None = None
        self._alerted = False

    def start(self, run_dir: Path | None) -> Path | None:
        """Profile both datasets once; save the reference in ``run_dir``; returns its path."""
        self.reference = profile_dataset(self.reference_data, self.modality, self.max_samples)
        current = profile_dataset(self.current_data, self.modality, self.max_samples)
        self.result = compare_profiles(
            self.reference, current, warning=self.warning, critical=self.critical
        )
        if run_dir is None:
            return None
        return save_profile(self.reference, Path(run_dir) / REFERENCE_PROFILE_FILE)

    def values(self) -> dict[str, float]:
        """``drift/<feature>/jsd`` of every feature (empty before :meth:`start`)."""
        if self.result is None:
            return {}
        return {f"drift/{name}/jsd": value for name, value in self.result.details.items()}

    def alert(self, epoch: int, step: int) -> Alert | None:
        """The ``data_drift`` alert, the first time the drift is not healthy."""
        result = self.result
        if result is None or result.status == "healthy" or self._alerted:
            return None
        self._alerted = True
        threshold = self.critical if result.status == "critical" else self.warning
        features = ", ".join(result.affected_features[:5])
        more = len(result.affected_features) - 5
        return Alert(
            "data_drift",
            f"{result.status} data drift: Jensen-Shannon divergence {result.js_divergence:.3f} "
            f">= {threshold:g} in {features}" + (f" and {more} more" if more > 0 else ""),
            result.js_divergence,
            threshold,
            step=step,
            epoch=epoch,
        )


class ConfidenceMonitor:
    """Confidence, entropy and expected calibration error over a whole validation.

    Args:
        bins: Equal-width confidence bins of the ECE.
        ece_threshold: Raise a ``calibration`` alert above this ECE (None: never).
    """

    def __init__(self, bins: int = 15, ece_threshold: float | None = None) -> None:
        self.bins = bins
        self.ece_threshold = ece_threshold
        self._sums: torch.Tensor | None = None  # [top1 conf, entropy, count]
        self._conf: torch.Tensor | None = None  # per bin: confidence sum
        self._hits: torch.Tensor | None = None  # per bin: correct predictions

    def wrap(self, metric_fn: MetricFn | None) -> MetricFn:
        """``metric_fn`` that also feeds this monitor every validation batch it sees."""

        def observed(outputs: Any, batch: Mapping[str, Any]) -> Mapping[str, float]:
            self.observe(outputs, batch)
            return metric_fn(outputs, batch) if metric_fn is not None else {}

        return observed

    @torch.no_grad()
    def observe(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        """Add one batch of classification logits and labels (stays on the device)."""
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if labels is None:
            return
        logits = extract_logits(outputs).detach().float()
        if logits.dim() != 2 or labels.reshape(-1).numel() != logits.size(0):
            return  # not one class distribution per sample: nothing to calibrate
        labels = labels.reshape(-1).to(logits.device)
        probs = logits.softmax(dim=-1)
        confidence, predicted = probs.max(dim=-1)
        entropy = -(probs * logits.log_softmax(dim=-1)).nan_to_num().sum(dim=-1)
        correct = (predicted == labels).float()
        bins = (confidence * self.bins).ceil().long().sub(1).clamp(0, self.bins - 1)
        if self._sums is None or self._sums.device != logits.device:
            self.reset(logits.device)
        assert self._sums is not None and self._conf is not None and self._hits is not None
        self._sums += torch.stack(
            [
                confidence.sum(),
                entropy.sum(),
                torch.tensor(float(len(labels)), device=logits.device),
            ]
        )
        self._conf.index_add_(0, bins, confidence)
        self._hits.index_add_(0, bins, correct)

    def reset(self, device: torch.device | str = "cpu") -> None:
        """Forget what was observed (a new validation starts)."""
        self._sums = torch.zeros(3, device=device)
        self._conf = torch.zeros(self.bins, device=device)
        self._hits = torch.zeros(self.bins, device=device)

    def take(self) -> dict[str, float]:
        """The validation's values, then reset; empty when no batch was observed.

        In a data-parallel run every rank calls this at the end of a validation: the
        sums and bins of all ranks are added up first (one all-reduce), so the values are
        those of the whole validation set, as in one process.
        """
        if self._sums is None or self._conf is None or self._hits is None:
            if not _distributed():
                return {}
            self.reset()  # a rank that saw nothing still takes part in the sum
        assert self._sums is not None and self._conf is not None and self._hits is not None
        device = self._sums.device
        totals = _summed_over_ranks(torch.cat([self._sums, self._conf, self._hits]))
        sums, conf, hits = totals.split([3, self.bins, self.bins])
        ece = (conf - hits).abs().sum()
        top1, entropy, count, ece_value = torch.cat([sums, ece[None]]).tolist()  # sync
        self.reset(device)
        if count == 0:
            return {}
        return {
            "val/ece": ece_value / count,
            "val/top1_confidence": top1 / count,
            "val/entropy": entropy / count,
        }

    def alert(self, values: Mapping[str, float], epoch: int, step: int) -> Alert | None:
        """The ``calibration`` alert when the validation's ECE exceeds the threshold."""
        ece = values.get("val/ece")
        if self.ece_threshold is None or ece is None or ece <= self.ece_threshold:
            return None
        return Alert(
            "calibration",
            f"val/ece {ece:.3f} is above {self.ece_threshold:g}: predictions are "
            f"miscalibrated (mean confidence {values.get('val/top1_confidence', 0.0):.3f})",
            ece,
            self.ece_threshold,
            step=step,
            epoch=epoch,
        )


def _distributed() -> bool:
    """Whether this process is one rank of several (a process group is up)."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _summed_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` added up over every rank (itself when the process runs alone)."""
    if not _distributed():
        return values
    dist = torch.distributed
    device = values.device
    if dist.get_backend() == "nccl" and device.type != "cuda":  # NCCL reduces GPU tensors
        values = values.to(torch.device("cuda", torch.cuda.current_device()))
    else:
        values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values.to(device)
