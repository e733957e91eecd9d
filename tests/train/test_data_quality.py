"""Drift and confidence in the loop: the same values and alerts on both drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainforge.config import load_config
from trainforge.engine.metrics import load_profile
from trainforge.errors import ConfigError
from trainforge.tracking import ExperimentDB, ModelRegistry
from trainforge.train import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
]


class _Alerts:
    def __init__(self) -> None:
        self.alerts: list = []

    def on_alert(self, alert) -> None:
        self.alerts.append(alert)


def _train(tmp_path: Path, engine: str, *extra: str) -> tuple[dict, list, Path]:
    out = tmp_path / engine
    config = load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={out}",
            f"tracking.database=sqlite:///{out / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=3",
            "trainer.enable_progress_bar=false",
            "loggers.tensorboard.enabled=false",
            "callbacks.monitoring.enabled=false",
            "callbacks.drift.enabled=true",
            "callbacks.drift.warning=0.0",
            "callbacks.drift.critical=1.0",
            "callbacks.confidence.enabled=true",
            "callbacks.confidence.ece_threshold=0.0",
            *extra,
        ],
        environ={},
    )
    hooks = _Alerts()
    Trainer(training_config=config, hooks=hooks, log_config=False).train()
    db = ExperimentDB(f"sqlite:///{out / 't.db'}")
    run = db.get_run(db.list_runs()[0]["run_id"])
    db.close()
    return run, hooks.alerts, out


def test_drift_and_confidence_on_both_drivers(tmp_path):
    results = {engine: _train(tmp_path, engine) for engine in ("plain", "lightning")}
    (plain, plain_alerts, _), (light, light_alerts, _) = results.values()
    for run in (plain, light):
        metrics = run["metrics"]
        drift = {k for k in metrics if k.startswith("drift/")}
        assert drift == {f"drift/f{i}/jsd" for i in range(64)}
        for key in ("val/ece", "val/top1_confidence", "val/entropy"):
            assert metrics[key]["count"] == 2  # once per validation
        assert 0.0 <= metrics["val/ece"]["last"] <= 1.0
        assert 0.1 <= metrics["val/top1_confidence"]["last"] <= 1.0
        assert metrics["val/entropy"]["last"] > 0.0
        (artifact,) = [a for a in run["artifacts"] if a["path"].endswith("reference_profile.json")]
        assert len(load_profile(artifact["path"]).numeric["f0"]) == 1000
    # the same data and the same rule: the same drift, to the last bit, on both drivers
    for key, summary in plain["metrics"].items():
        if key.startswith("drift/"):
            assert light["metrics"][key]["last"] == summary["last"], key
    assert plain["metrics"]["val/ece"]["last"] == pytest.approx(
        light["metrics"]["val/ece"]["last"], abs=1e-5
    )
    for alerts in (plain_alerts, light_alerts):
        kinds = [a.type for a in alerts]
        assert kinds.count("data_drift") == 1  # once per run, the data does not change
        assert kinds.count("calibration") == 2  # every validation (threshold 0)
        assert "warning data drift" in next(a for a in alerts if a.type == "data_drift").message


def test_a_named_drift_dataset_is_compared_instead(tmp_path):
    # the training data itself as the "new" data: no drift in any feature
    run, _, out = _train(tmp_path, "plain", "callbacks.drift.dataset=digits")
    drift = {k: v["last"] for k, v in run["metrics"].items() if k.startswith("drift/")}
    assert len(drift) == 64 and set(drift.values()) == {0.0}
    # a model registered from the run keeps the run's reference profile
    registry = ModelRegistry(f"sqlite:///{out / 't.db'}")
    model_id = registry.register_model("m", checkpoint_path="x", training_run_id=run["run_id"])
    kept = registry.get_model(model_id)["metadata"]["reference_profile"]
    assert kept.endswith("reference_profile.json") and Path(kept).is_file()
    with pytest.raises(ConfigError, match="callbacks.drift.dataset='digitz' cannot be built"):
        _train(tmp_path / "bad", "plain", "callbacks.drift.dataset=digitz")
