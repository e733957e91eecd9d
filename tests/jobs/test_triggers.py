"""Retraining triggers: the decision, and one train job per window for a registered model."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import torch

from trainforge.cli import main
from trainforge.config import load_config
from trainforge.engine.metrics import profile_dataset, save_profile
from trainforge.errors import TrackingError
from trainforge.jobs import JobManager
from trainforge.production import RetrainingTriggerManager
from trainforge.tracking import ExperimentDB, ModelRegistry

DAY = 86_400.0
NOW = datetime(2025, 11, 16, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kwargs", "fired"),
    [
        ({"drift_score": 0.25}, ["drift"]),
        ({"drift_score": 0.15}, []),
        (
            {"current_metrics": {"val_loss": 0.45}, "baseline_metrics": {"val_loss": 0.38}},
            ["performance"],
        ),
        ({"current_metrics": {"val_loss": 0.40}, "baseline_metrics": {"val_loss": 0.38}}, []),
        (
            {"current_metrics": {"val/acc": 0.80}, "baseline_metrics": {"val/acc": 0.95}},
            ["performance"],
        ),
        ({"current_metrics": {"val/acc": 0.99}, "baseline_metrics": {"val/acc": 0.95}}, []),
        ({"last_train_timestamp": "2025-11-01T00:00:00"}, ["time"]),
        ({"last_train_timestamp": NOW.timestamp() - 6 * DAY}, []),
        ({"new_data_count": 15_000}, ["data volume"]),
        ({"new_data_count": 10_000}, []),
        (
            {
                "current_metrics": {"val_loss": 0.45},
                "baseline_metrics": {"val_loss": 0.38},
                "drift_score": 0.25,
                "new_data_count": 15000,
                "last_train_timestamp": "2025-11-13T00:00:00",
            },
            ["drift", "performance", "data volume"],
        ),
    ],
)
def test_check_triggers(kwargs, fired):
    manager = RetrainingTriggerManager(0.2, 0.1, 7, 10_000)
    should, reasons = manager.check_triggers(**kwargs, now=NOW)
    assert should == bool(fired)
    assert [reason.split(":")[0] for reason in reasons] == fired


def test_a_trigger_left_none_is_off_and_bad_input_is_refused():
    manager = RetrainingTriggerManager(None, None, None, None)
    assert manager.check_triggers(drift_score=1.0, new_data_count=10**9, now=NOW) == (False, [])
    with pytest.raises(TrackingError, match="drift_threshold must be a number"):
        RetrainingTriggerManager(drift_threshold=-1)
    with pytest.raises(TrackingError, match="not an ISO 8601 time"):
        RetrainingTriggerManager().check_triggers(last_train_timestamp="last tuesday")


def _registered_model(url: str, tmp_path, **metadata) -> tuple[JobManager, int, float]:
    config = load_config(template="digits", cli=[f"run.output_dir={tmp_path / 'out'}"], environ={})
    db = ExperimentDB(url)
    run_id = db.log_run("trained", config.record())
    db.update_run_status(run_id, "completed")
    registry = ModelRegistry(db.store)
    model_id = registry.register_model(
        "digits-mlp",
        checkpoint_path=str(tmp_path / "ckpt"),
        metrics={"val/loss": 0.38},
        training_run_id=run_id,
        metadata=metadata or None,
    )
    registry.promote_model(model_id, "production")
    return JobManager(db.store), model_id, registry.get_model(model_id)["created_at"]


def test_evaluate_and_submit_once_per_window(jobs_url, tmp_path):
    jobs, model_id, trained_at = _registered_model(jobs_url, tmp_path)
    triggers = RetrainingTriggerManager(0.2, 0.1, 7, 10_000)
    quiet = triggers.evaluate_and_submit(jobs, "digits-mlp", tag="production", now=trained_at + DAY)
    assert (quiet.triggered, quiet.job_id) == (False, None)
    now = trained_at + 8 * DAY
    current = {"val/loss": 0.5}
    dry = triggers.evaluate_and_submit(
        jobs, model_id, current_metrics=current, now=now, dry_run=True
    )
    assert dry.triggered and dry.job_id is None and jobs.list_jobs() == []
    first = triggers.evaluate_and_submit(jobs, model_id, current_metrics=current, now=now)
    assert first.submitted and [r.split(":")[0] for r in first.reasons] == ["performance", "time"]
    job = jobs.get_job(first.job_id)
    assert (job.job_type, job.reasons) == ("train", first.reasons)
    assert job.config["config"]["run"]["output_dir"] == str(tmp_path / "out")
    again = triggers.evaluate_and_submit(jobs, model_id, current_metrics=current, now=now + 60)
    assert (again.job_id, again.submitted) == (first.job_id, False)
    later = triggers.evaluate_and_submit(jobs, model_id, current_metrics=current, now=now + DAY)
    assert later.submitted and later.job_id != first.job_id
    assert len(jobs.list_jobs()) == 2


def test_drift_is_measured_against_the_model_s_reference_profile(jobs_url, tmp_path):
    torch.manual_seed(0)
    reference = [(torch.randn(4), 0) for _ in range(300)]
    shifted = [(torch.randn(4) + 2.0, 0) for _ in range(300)]
    path = save_profile(profile_dataset(reference, "tabular"), tmp_path / "reference_profile.json")
    jobs, model_id, trained_at = _registered_model(jobs_url, tmp_path, reference_profile=str(path))
    triggers = RetrainingTriggerManager(0.2, None, None, None)
    same = triggers.evaluate_and_submit(jobs, model_id, current_data=reference, now=trained_at)
    assert same.drift_score == 0.0 and not same.triggered
    moved = triggers.evaluate_and_submit(jobs, model_id, current_data=shifted, now=trained_at)
    assert moved.drift_score > 0.5 and moved.submitted
    assert moved.reasons[0].startswith("drift: Jensen-Shannon divergence")


def test_a_model_without_a_profile_cannot_measure_drift(jobs_url, tmp_path):
    jobs, model_id, _ = _registered_model(jobs_url, tmp_path)
    with pytest.raises(TrackingError, match="kept no reference data profile"):
        RetrainingTriggerManager().evaluate_and_submit(
            jobs, model_id, current_data=[(torch.ones(2), 0)]
        )


def test_triggers_check_command(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    _registered_model(url, tmp_path)
    base = ["triggers", "check", "digits-mlp", "--tag", "production", "--db", url, "--json"]
    assert main([*base, "--metric", "val/loss=0.39"]) == 0
    assert json.loads(capsys.readouterr().out)["triggered"] is False
    assert main([*base, "--drift", "0.3", "--submit"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["triggered"] and decision["submitted"] and decision["job_id"] == 1
    assert main([*base, "--metric", "val/loss"]) == 1
    assert "is not KEY=NUMBER" in capsys.readouterr().err
    assert main(["triggers", "check", "no-such-model", "--db", url]) == 1
    assert "no model 'no-such-model'" in capsys.readouterr().err
