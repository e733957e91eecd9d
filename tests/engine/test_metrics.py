"""MetricsEngine with a real Lightning CSVLogger, drift, calibration and alerts."""

from __future__ import annotations

import csv

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from trainforge.engine import (
    AlertConfig,
    MetricsEngine,
    TaskSpec,
    profile_dataset,
)
from trainforge.engine.metrics import confidence_metrics, jensen_shannon
from trainforge.hooks import HookEvent, HookManager


class RecordingTracker:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))


def test_fan_out_to_csv_logger_and_tracker_with_summary(tmp_path):
    csv_logger = CSVLogger(save_dir=tmp_path, name="run")
    tracker = RecordingTracker()
    engine = MetricsEngine(loggers=[csv_logger], tracker=tracker)
    engine.log_scalar("train/loss", torch.tensor(0.9), step=1)
    engine.log_metrics({"train/loss": 0.7, "lr/group0": 0.1}, step=2)
    engine.log_metrics({"val/loss": 0.8, "val/acc": 0.5}, step=2)
    engine.close()

    assert tracker.calls[0] == ({"train/loss": pytest.approx(0.9)}, 1)
    assert [step for _, step in tracker.calls] == [1, 2, 2]
    with open(tmp_path / "run" / "version_0" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"step", "train/loss", "val/loss", "val/acc", "lr/group0"} <= set(rows[0])
    assert [float(r["train/loss"]) for r in rows if r["train/loss"]] == pytest.approx([0.9, 0.7])

    summary = engine.get_summary()
    assert list(summary["step"]) == [1, 2]
    assert list(summary.columns) == ["step", "train/loss", "lr/group0", "val/loss", "val/acc"]
    assert summary.loc[1, "val/acc"] == 0.5
    assert summary["val/acc"].isna()[0]


def test_effective_step_rule():
    tracker = RecordingTracker()
    engine = MetricsEngine(tracker=tracker, gradient_accumulation_steps=4)
    logged = [engine.log_scalar("train/loss", float(i), micro_step=i) for i in range(8)]
    assert logged == [False, False, False, True, False, False, False, True]
    assert [step for _, step in tracker.calls] == [1, 2]
    assert [m["train/loss"] for m, _ in tracker.calls] == [3.0, 7.0]
    assert [engine.should_log(i) for i in range(4)] == [False, False, False, True]


def test_drift_is_healthy_on_identical_and_critical_on_shifted_data():
    spec = TaskSpec.classification_tiny(num_classes=2, input_dim=3)
    g = torch.Generator().manual_seed(0)
    base = [(torch.randn(3, generator=g), 0) for _ in range(400)]
    shifted = [(x + torch.tensor([0.0, 0.0, 4.0]), y) for x, y in base]
    engine = MetricsEngine(drift_warning=0.1, drift_critical=0.25)
    reference = profile_dataset(base, spec)
    same = engine.log_epoch(0, {"train/loss": 1.0}, reference, profile_dataset(base, spec))
    assert same is not None and same.status == "healthy" and same.js_divergence == 0.0
    drift = engine.log_epoch(1, {"train/loss": 0.9}, reference, profile_dataset(shifted, spec))
    assert drift.status == "critical"
    assert drift.affected_features == ["f2"]
    assert drift.details["f0"] == 0.0
    row = engine.get_summary().iloc[-1]
    assert row["drift/f2/jsd"] == pytest.approx(drift.js_divergence)
    assert row["health/drift_status"] == 2.0
    assert list(engine.get_epoch_summary()["epoch"]) == [0, 1]


@pytest.mark.parametrize("modality", ["text", "vision"])
def test_profiles_for_text_and_vision(modality):
    if modality == "text":
        spec = TaskSpec.language_modeling_tiny()
        a = [{"inputs": torch.tensor([1, 2, 3])}] * 10
        b = [{"inputs": torch.tensor([7, 8, 9])}] * 10
        feature = "tokens"
    else:
        spec = TaskSpec.vision_tiny()
        a = [(torch.zeros(3, 4, 4), 0)] * 10
        b = [(torch.ones(3, 4, 4), 0)] * 10
        feature = "pixels"
    engine = MetricsEngine()
    drift = engine.log_epoch(0, {}, profile_dataset(a, spec), profile_dataset(b, spec))
    assert drift.details == {feature: pytest.approx(1.0)}
    assert drift.status == "critical"


def test_jensen_shannon_reference_values():
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([1, 1], [1, 1]) == 0.0
    # reference: the textbook definition, 0.5 KL(p || m) + 0.5 KL(q || m)
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
    m = 0.5 * (p + q)
    kl = lambda a, b: float((a[a > 0] * (a[a > 0] / b[a > 0]).log2()).sum())  # noqa: E731
    expected = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert jensen_shannon(p.numpy(), q.numpy()) == pytest.approx(expected)


def test_confidence_and_ece_on_a_perfectly_calibrated_toy():
    # every prediction has confidence 0.8 and exactly 80 % of them are right
    logits = torch.log(torch.tensor([[0.8, 0.2]])).repeat(10, 1)
    labels = torch.tensor([0] * 8 + [1] * 2)
    metrics = confidence_metrics(logits, labels)
    assert metrics.top1_confidence == pytest.approx(0.8)
    assert metrics.accuracy == pytest.approx(0.8)
    assert metrics.expected_calibration_error == pytest.approx(0.0, abs=1e-6)
    assert metrics.top5_confidence == pytest.approx(1.0)
    entropy = -(0.8 * torch.log(torch.tensor(0.8)) + 0.2 * torch.log(torch.tensor(0.2)))
    assert metrics.entropy == pytest.approx(entropy.item(), rel=1e-5)
    # overconfident: confidence 0.8, accuracy 0.5 -> ECE 0.3
    worse = confidence_metrics(logits, torch.tensor([0] * 5 + [1] * 5))
    assert worse.expected_calibration_error == pytest.approx(0.3, abs=1e-6)

    tracker = RecordingTracker()
    MetricsEngine(tracker=tracker).log_confidence(logits, labels, step=3)
    ((logged, step),) = tracker.calls
    assert step == 3 and logged["val/ece"] == pytest.approx(0.0, abs=1e-6)
    assert {"val/confidence_top1", "val/confidence_top5", "val/entropy"} <= set(logged)


def test_alerts_fire_callbacks_and_hooks():
    hooks = HookManager()
    fired, called = [], []
    hooks.register(HookEvent.ON_ALERT, lambda ctx: fired.append(ctx["alert"].type))
    engine = MetricsEngine(
        alert_config=AlertConfig(
            val_loss_spike_threshold=0.2,
            accuracy_drop_threshold=0.05,
            gradient_explosion_threshold=10.0,
        ),
        alert_callbacks=[called.append],
        hooks=hooks,
    )
    engine.log_epoch(0, {"val/loss": 1.0, "val/acc": 0.80}, step=10)
    engine.log_epoch(1, {"val/loss": 0.5, "val/acc": 0.90}, step=20)
    assert not engine.has_alerts()
    engine.log_epoch(2, {"val/loss": 0.55, "val/acc": 0.88}, step=30)  # within limits
    assert not engine.has_alerts()
    engine.log_epoch(3, {"val/loss": 0.7, "val/acc": 0.80}, step=40)
    engine.report_gradient_norm(3.0, step=41)
    engine.report_gradient_norm(float("nan"), step=42)
    types = [a.type for a in engine.get_alerts()]
    assert types == ["val_loss_spike", "accuracy_drop", "gradient_explosion"]
    assert fired == types and [a.type for a in called] == types
    spike = engine.get_alerts()[0]
    assert spike["epoch"] == 3 and "20%" in spike.message
    assert engine.get_summary().set_index("step").loc[40, "health/val_loss_spike"] == 0.7
