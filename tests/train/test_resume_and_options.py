"""Resume semantics and options of both drivers, in-process on short digits runs."""

from __future__ import annotations

import csv
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.config import load_config
from trainforge.errors import ConfigError
from trainforge.hooks import HookEvent, HookManager
from trainforge.train import Trainer

SHORT = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "tracking.enabled=false",
]


def config(tmp_path, *extra):
    return load_config(
        template="digits", cli=[f"run.output_dir={tmp_path}", *SHORT, *extra], environ={}
    )


@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_resume_best_and_a_longer_schedule_with_a_new_lr(tmp_path, engine):
    first = Trainer(training_config=config(tmp_path, f"trainer.engine={engine}")).train()
    assert first.best_checkpoint_path is not None

    longer = config(tmp_path, f"trainer.engine={engine}", "trainer.max_epochs=4", "optim.lr=0.01")
    hooks = HookManager()
    seen = []
    hooks.register(HookEvent.ON_RESUME, lambda ctx: seen.append(ctx["path"]))
    resumed = Trainer(training_config=longer, hooks=hooks).train(resume_from="best")
    assert seen == [first.best_checkpoint_path]
    assert resumed.global_step == 16  # 4 epochs x 4 batches: the two new epochs ran
    # the schedule is rebuilt for 16 steps and the new peak lr: no step runs at lr 0
    events = EventAccumulator(str(resumed.run_dir / "tensorboard"))
    events.Reload()
    values = [e.value for e in events.Scalars("lr/pg1")]
    assert len(values) == 8
    # both drivers log the lr each step trains with: steps 9..16 of a 16-step cosine
    # from 0.01, i.e. schedule positions 8..15
    assert values[0] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 8 / 16)), rel=1e-5)
    # the old schedule (8 steps from 0.003) would be at its end, 0, by now
    assert all(v > 0 for v in values[:-1])


@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_monitoring_logs_layer_norms_and_lr_monitor_can_be_turned_off(tmp_path, engine):
    results = Trainer(
        training_config=config(
            tmp_path,
            f"trainer.engine={engine}",
            "callbacks.monitoring.log_frequency=2",
            "callbacks.lr_monitor.enabled=false",
        )
    ).train()
    events = EventAccumulator(str(results.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "grad/global_norm" in tags
    assert {"grad/net.0.weight/norm", "weights/net.0.weight/norm"} <= tags
    # the update ratio of the step's own update: 2 epochs x 4 steps, every 2nd step
    ratios = events.Scalars("weights/net.0.weight/update_ratio")
    assert len(ratios) == 4
    assert all(0 < e.value < 1 for e in ratios)
    assert not any(t.startswith("lr/") for t in tags)


def test_early_stopping_stops_after_patience_epochs(tmp_path):
    results = Trainer(
        training_config=config(
            tmp_path,
            "trainer.max_epochs=10",
            "optim.lr=1e-9",  # nothing improves
            "callbacks.early_stopping.enabled=true",
            "callbacks.early_stopping.monitor=val/loss",
            "callbacks.early_stopping.patience=2",
            "callbacks.early_stopping.min_delta=0.1",
        )
    ).train()
    # epoch 0 sets the reference, epochs 1 and 2 fail to improve -> stop after 3 epochs
    assert results.epochs_completed == 3


@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_hook_manager_and_hook_objects_together(tmp_path, engine):
    class Recorder:
        def __init__(self):
            self.epochs, self.checkpoints, self.steps = [], [], []

        def on_epoch_end(self, **payload):
            self.epochs.append(payload["epoch"])
            self.checkpoints.append(payload["checkpoint_path"])

        def on_batch_end(self, global_step, epoch):
            self.steps.append((epoch, global_step))

    manager = HookManager()
    started, validated = [], []
    manager.register(HookEvent.ON_TRAIN_START, lambda ctx: started.append(True))
    manager.register(
        HookEvent.ON_VALIDATION_END, lambda ctx: validated.append(sorted(ctx["metrics"]))
    )
    recorder = Recorder()
    config_ = config(tmp_path, f"trainer.engine={engine}")
    Trainer(training_config=config_, hooks=[manager, recorder]).train()
    assert started == [True]
    assert validated == [["val/acc", "val/loss"]] * 2
    assert recorder.epochs == [0, 1]
    assert all(path is not None and path.is_dir() for path in recorder.checkpoints)
    assert recorder.steps == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (1, 6), (1, 7), (1, 8)]


def test_options_the_plain_driver_does_not_have_are_refused():
    with pytest.raises(ConfigError, match="plain driver does not profile"):
        load_config(cli=["trainer.engine=plain", "callbacks.profiler.enabled=true"], environ={})
    with pytest.raises(ConfigError, match="trainer.precision"):
        load_config(cli=["trainer.precision=64-true"], environ={})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_trains_and_checkpoints_the_plain_state_dict(tmp_path):
    from trainforge.checkpoint import CheckpointManager

    results = Trainer(
        training_config=config(
            tmp_path,
            "trainer.compile=true",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
        )
    ).train()
    assert results.global_step == 3
    manager = CheckpointManager(results.run_dir / "checkpoints", monitor=None)
    state = manager.load("last", restore_rng=False)["model_state_dict"]
    assert state and not any(key.startswith("_orig_mod.") for key in state)


def test_both_drivers_raise_the_same_epoch_alerts(tmp_path):
    """A too-high learning rate: val/acc drops in epoch 3; both drivers alert alike."""
    fired = {}
    for engine in ("lightning", "plain"):
        hooks = HookManager()
        seen = fired.setdefault(engine, [])
        hooks.register(
            HookEvent.ON_ALERT,
            lambda ctx, seen=seen: seen.append((ctx["alert"].type, ctx["alert"].epoch)),
        )
        results = Trainer(
            training_config=config(
                tmp_path / engine,
                f"trainer.engine={engine}",
                "trainer.max_epochs=4",
                "trainer.limit_val_batches=null",
                "optim.lr=0.3",
                "optim.scheduler=none",
                "callbacks.gradient_health.enabled=false",
            ),
            hooks=hooks,
        ).train()
        with (results.run_dir / "csv" / "metrics.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert any(row.get("health/accuracy_drop") for row in rows), engine
    assert fired["lightning"] == fired["plain"]
    assert ("accuracy_drop", 3) in fired["plain"]


@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_save_interval_epochs_and_the_final_state_are_checkpointed(tmp_path, engine):
    from trainforge.checkpoint import CheckpointManager

    def saved_epochs(*extra):
        results = Trainer(
            training_config=config(
                tmp_path,
                f"trainer.engine={engine}",
                "checkpoint.save_interval_epochs=2",
                "checkpoint.keep_last_n=10",
                *extra,
            )
        ).train()
        manager = CheckpointManager(results.run_dir / "checkpoints", monitor=None)
        return sorted(c.epoch for c in manager.list_checkpoints())

    assert saved_epochs("trainer.max_epochs=5") == [1, 3, 4]  # every 2nd epoch, and the last
    # an early stop after epoch 2 (an odd epoch of the interval) still leaves its state
    stopped = saved_epochs(
        "trainer.max_epochs=10",
        "optim.lr=1e-9",
        "callbacks.early_stopping.enabled=true",
        "callbacks.early_stopping.monitor=val/loss",
        "callbacks.early_stopping.patience=2",
        "callbacks.early_stopping.min_delta=0.1",
    )
    assert stopped[-1] == 2


@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_a_run_cut_by_max_steps_continues_where_it_stopped(tmp_path, engine):
    """6 steps (half of epoch 1), then resumed to 12: the same weights as 12 at once."""
    import torch

    from trainforge.checkpoint import CheckpointManager

    def run(folder, max_steps, resume=None):
        results = Trainer(
            training_config=config(
                tmp_path / folder,
                f"trainer.engine={engine}",
                "trainer.max_epochs=null",
                f"trainer.max_steps={max_steps}",
                "optim.scheduler=none",  # a schedule's length would follow max_steps
            )
        ).train(resume_from=resume)
        manager = CheckpointManager(results.run_dir / "checkpoints", monitor=None)
        return manager.load("last", restore_rng=False)

    expected = run("once", 12)
    cut = run("twice", 6)
    assert (cut["epoch"], cut["global_step"]) == (1, 6)  # in epoch 1 of 4-batch epochs
    actual = run("twice", 12, resume="last")
    assert actual["global_step"] == 12
    for key, tensor in expected["model_state_dict"].items():
        assert torch.equal(tensor, actual["model_state_dict"][key]), key
