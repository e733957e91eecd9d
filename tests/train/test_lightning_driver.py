"""``trainer.engine=lightning``: the same parts under lightning.Trainer, same results shape."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.checkpoint import CheckpointManager
from trainforge.config import load_config
from trainforge.errors import ConfigError
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer


def test_digits_under_lightning_logs_tracks_and_checkpoints(tmp_path, digits_config):
    results = Trainer(training_config=digits_config(tmp_path)).train()
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


def test_resume_under_lightning_continues_from_the_checkpoint(tmp_path, digits_config):
    first = Trainer(training_config=digits_config(tmp_path, "tracking.enabled=false")).train()
    longer = digits_config(tmp_path, "tracking.enabled=false", "trainer.max_epochs=3")
    resumed = Trainer(training_config=longer).train(resume_from="last")
    assert first.global_step == 12
    assert resumed.global_step == 18  # one more epoch of 6 batches, not three
    assert list(resumed.metrics_summary["epoch"]) == [2]


def test_manual_optimization_runs_under_lightning(tmp_path, digits_config):
    results = Trainer(
        training_config=digits_config(
            tmp_path,
            "tracking.enabled=false",
            "trainer.optimization=manual",
            "trainer.micro_batch_size=16",
            "trainer.max_epochs=1",
        )
    ).train()
    assert results.global_step == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer.engine=lightning", "trainer.strategy=fsdp", "trainer.gradient_clip_val=1"],
            "Lightning's FSDP strategy does not clip by norm",
        ),
        (["trainer.engine=plain", "trainer.devices=2"], "use trainer.engine=lightning for DDP"),
        (["trainer.engine=lightning", "trainer.devices=many"], "give a number of devices"),
    ],
)
def test_unsupported_device_settings_are_refused_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(cli=overrides, environ={})


def test_resume_from_any_checkpoint_is_bit_exact(tmp_path, digits_config):
    """Mid-epoch, epoch-end and final-epoch checkpoints all resume to the same weights.

    Batches of 200 over digits' 1,437 training images: 8 per epoch, the last one short;
    step checkpoints every 3 optimizer steps fall inside both epochs. Dropout is on, so
    the restored RNG state matters too.
    """
    extra = (
        "tracking.enabled=false",
        "trainer.limit_train_batches=null",
        "data.batch_size=200",
        "trainer.checkpoint_every_n_steps=3",
        "checkpoint.keep_last_n=50",
    )
    first = Trainer(training_config=digits_config(tmp_path, *extra)).train()
    manager = CheckpointManager(first.run_dir / "checkpoints", monitor=None)
    expected = manager.load("last", restore_rng=False)
    assert first.global_step == expected["global_step"] == 16
    starts = [c for c in manager.list_checkpoints() if c.global_step < 16]
    assert {c.global_step for c in starts} == {3, 6, 8, 9, 12, 15}
    for start in starts:
        resumed = Trainer(training_config=digits_config(tmp_path, *extra)).train(
            resume_from=start.path
        )
        actual = CheckpointManager(resumed.run_dir / "checkpoints", monitor=None).load(
            "last", restore_rng=False
        )
        assert actual["global_step"] == 16, start.path
        for key, tensor in expected["model_state_dict"].items():
            assert torch.equal(tensor, actual["model_state_dict"][key]), (start.path, key)


@pytest.mark.filterwarnings("ignore:Warning. Profiler clears events at the end of each cycle")
def test_pytorch_profiler_leaves_a_trace_and_the_operator_table(tmp_path, digits_config):
    """One profiler spans the whole fit: two epochs, one window of the schedule, one trace."""
    config = digits_config(
        tmp_path,
        "tracking.enabled=false",
        "trainer.max_epochs=2",
        "callbacks.profiler.enabled=true",
        "callbacks.profiler.kind=pytorch",
    )
    results = Trainer(training_config=config).train()
    assert results.epochs_completed == 2
    trace_dir = tmp_path / "outputs" / "profiler"
    traces = list(trace_dir.glob("*.pt.trace.json"))
    # wait=1 warmup=1 active=3 repeat=1 over 12 training steps: a profiler started again
    # for the second epoch would record a second training window
    assert len([t for t in traces if "training_step" in t.name]) == 1
    # the Chrome trace format TensorBoard's profiler plugin reads: operator events with
    # names, phases and timestamps
    trace = json.loads(traces[0].read_text())
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    assert events and all({"name", "ts", "dur"} <= e.keys() for e in events)
    assert any(e.get("cat") == "cpu_op" for e in events)
    table = (trace_dir / "top_operators.txt").read_text()
    assert "self CPU ms" in table
