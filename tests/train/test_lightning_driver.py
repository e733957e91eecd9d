"""``trainer.engine=lightning``: the same parts under lightning.Trainer, same results shape."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.checkpoint import CheckpointManager
from trainforge.config import load_config
from trainforge.errors import ConfigError
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*_pytree.*"),
    pytest.mark.filterwarnings("ignore:.*log_every_n_steps.*"),
    pytest.mark.filterwarnings("ignore:.*val_check_interval.*"),
]


def lightning_config(tmp_path, *extra):
    return load_config(
        template="digits",
        cli=[
            "trainer.engine=lightning",
            f"run.output_dir={tmp_path / 'outputs'}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=2",
            "callbacks.monitoring.log_frequency=2",
            *extra,
        ],
        environ={},
    )


def test_digits_under_lightning_logs_tracks_and_checkpoints(tmp_path):
    results = Trainer(training_config=lightning_config(tmp_path)).train()
    assert results.global_step == 12
    assert results.epochs_completed == 2
    assert list(results.metrics_summary["epoch"]) == [0, 1]
    assert results.best_metric is not None and results.best_metric > 0.3

    events = EventAccumulator(str(results.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "grad/global_norm"} <= tags
    assert any(t.startswith("grad/") and t.endswith("/norm") for t in tags)

    manager = CheckpointManager(results.run_dir / "checkpoints", monitor="val/acc", mode="max")
    assert manager.list_checkpoints()
    assert all(report.ok for report in manager.verify())

    db = ExperimentDB(f"sqlite:///{tmp_path / 't.db'}")
    run = db.get_run(int(results.run_id.removeprefix("run-")))
    assert run["status"] == "completed"
    assert len(db.get_metric_history(run["run_id"], "val/acc")) == 2


def test_resume_under_lightning_continues_from_the_checkpoint(tmp_path):
    first = Trainer(training_config=lightning_config(tmp_path, "tracking.enabled=false")).train()
    longer = lightning_config(tmp_path, "tracking.enabled=false", "trainer.max_epochs=3")
    resumed = Trainer(training_config=longer).train(resume_from="last")
    assert first.global_step == 12
    assert resumed.global_step == 18  # one more epoch of 6 batches, not three
    assert list(resumed.metrics_summary["epoch"]) == [2]


def test_manual_optimization_runs_under_lightning(tmp_path):
    results = Trainer(
        training_config=lightning_config(
            tmp_path,
            "tracking.enabled=false",
            "trainer.optimization=manual",
            "trainer.micro_batch_size=16",
            "trainer.max_epochs=1",
        )
    ).train()
    assert results.global_step == 6


def test_multi_device_is_refused_clearly():
    with pytest.raises(ConfigError, match="multi-device strategies are not available yet"):
        load_config(
            cli=["trainer.engine=lightning", "trainer.strategy=ddp", "trainer.devices=2"],
            environ={},
        )


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
def test_mid_epoch_resume_under_lightning_finishes_the_epoch(tmp_path):
    """A step checkpoint resumes to the same step count (not yet bit-exact weights)."""
    extra = (
        "tracking.enabled=false",
        "trainer.checkpoint_every_n_steps=2",
        "trainer.max_epochs=1",
        "checkpoint.keep_last_n=10",
    )
    first = Trainer(training_config=lightning_config(tmp_path, *extra)).train()
    manager = CheckpointManager(first.run_dir / "checkpoints", monitor=None)
    (mid,) = [c.path for c in manager.list_checkpoints() if c.global_step == 2]
    resumed = Trainer(training_config=lightning_config(tmp_path, *extra)).train(resume_from=mid)
    assert first.global_step == resumed.global_step == 6


@pytest.mark.filterwarnings("ignore:Warning. Profiler clears events at the end of each cycle")
def test_pytorch_profiler_leaves_a_trace_and_the_operator_table(tmp_path):
    config = lightning_config(
        tmp_path,
        "tracking.enabled=false",
        "trainer.max_epochs=1",
        "callbacks.profiler.enabled=true",
        "callbacks.profiler.kind=pytorch",
    )
    Trainer(training_config=config).train()
    trace_dir = tmp_path / "outputs" / "profiler"
    assert list(trace_dir.glob("*.pt.trace.json"))
    table = (trace_dir / "top_operators.txt").read_text()
    assert "self CPU ms" in table
