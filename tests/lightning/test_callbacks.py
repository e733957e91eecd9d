"""The callbacks on real fits: TensorBoard files, a NaN run, checkpoints, a SQLite store."""

from __future__ import annotations

import copy
import math

import lightning.pytorch as pl
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.checkpoint import CheckpointManager
from trainforge.engine import GradientMonitor
from trainforge.engine.policies import BestMetric, EarlyStopping, HealthPolicy, RunPolicies
from trainforge.errors import GradientHealthError
from trainforge.lightning import (
    CheckpointEngineCallback,
    EarlyStoppingCallback,
    ExperimentTrackingCallback,
    GradientHealthCallback,
    RunCallback,
    TrainingMonitor,
    create_logger,
    logger_dir,
    to_lightning_checkpoint,
)
from trainforge.tracking import ExperimentDB, ExperimentTracker

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*LeafSpec.*is deprecated:FutureWarning",
    "ignore:.*does not have many workers.*",
    "ignore:.*log_every_n_steps.*",
    "ignore:You defined a `validation_step` but have no `val_dataloader`.*",
)


def test_training_monitor_writes_layer_norms_to_tensorboard(tiny, tmp_path):
    tb = create_logger("tensorboard", save_dir=tmp_path, run_id="run")
    monitor = TrainingMonitor(log_frequency=2)
    fit = tiny.trainer(max_steps=4, logger=tb, callbacks=[monitor], log_every_n_steps=1)
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader())
    tb.finalize("success")
    events = EventAccumulator(str(logger_dir(tmp_path, "run", "tensorboard")))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"grad/0.weight/norm", "grad/2.bias/norm", "grad/global_norm"} <= tags
    assert {"weights/0.weight/norm", "weights/0.weight/update_ratio", "train/loss"} <= tags
    # measured before optimizer steps 2 and 4, logged at those (1-based) steps
    assert [e.step for e in events.Scalars("grad/global_norm")] == [2, 4]
    ratios = [e.value for e in events.Scalars("weights/0.weight/update_ratio")]
    assert all(0 < r < 1 for r in ratios)


def _nan_after(step: int):
    calls = {"n": 0}

    def loss(outputs, batch):
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(outputs, batch["labels"])
        return value * math.nan if calls["n"] > step else value

    return loss


def test_gradient_health_stops_a_nan_run(tiny):
    module = tiny.task_module()
    module.loss_fn = _nan_after(1)
    health = GradientHealthCallback(GradientMonitor(max_consecutive_failures=2), policy="stop")
    fit = tiny.trainer(max_steps=10, callbacks=[health])
    with pytest.raises(GradientHealthError, match="2 consecutive unhealthy"):
        fit.fit(module, train_dataloaders=tiny.loader())
    assert fit.global_step < 10
    # the unhealthy steps before the stop were skipped: the weights are still finite
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert health.skipped_steps == 1


def test_gradient_health_skip_policy_keeps_training(tiny):
    module = tiny.task_module()
    module.loss_fn = _nan_after(2)
    health = GradientHealthCallback(GradientMonitor(max_consecutive_failures=10**9), "skip")
    fit = tiny.trainer(max_steps=4, callbacks=[health])
    fit.fit(module, train_dataloaders=tiny.loader())
    assert fit.global_step == 4
    assert health.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_checkpoint_callback_writes_verified_checkpoints_and_resumes(tiny, tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", monitor="val/loss", keep_last_n=10)
    callback = CheckpointEngineCallback(manager, every_n_steps=3)
    fit = tiny.trainer(max_epochs=2, callbacks=[callback], num_sanity_val_steps=0)
    fit.fit(tiny.task_module(), tiny.loader(), tiny.loader(n=32))
    reports = manager.verify()
    # steps 3 and 6 (every_n_steps) and the two epoch ends (steps 4 and 8)
    assert len(reports) == 4 and all(r.ok for r in reports)
    last = manager.load("last")
    assert last["global_step"] == 8 and last["epoch"] == 1
    assert last["custom_state"]["driver"] == "lightning"
    assert last["custom_state"]["position"]["epoch"] == 2  # both epochs done
    assert set(last["model_state_dict"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert not math.isnan(last["metrics"]["val/loss"])  # an epoch end records validation
    step_three = next(m for m in manager.list_checkpoints() if m.global_step == 3)
    assert "val/loss" not in manager.load(step_three.path)["metrics"] or math.isnan(
        manager.load(step_three.path)["metrics"]["val/loss"]
    )  # a step checkpoint never carries an older validation's values

    # resume from the end of epoch 0 (step 4) and finish: the same weights as above
    # (mid-epoch checkpoints need a resumable data loader, e.g. UniversalDataModule's)
    end_of_first = next(m.path for m in manager.list_checkpoints() if m.global_step == 4)
    loaded = manager.load(end_of_first, restore_rng=False)
    ckpt = to_lightning_checkpoint(loaded, tmp_path / "resume.ckpt")
    resumed = tiny.task_module()
    again = tiny.trainer(max_epochs=2, num_sanity_val_steps=0)
    again.fit(resumed, tiny.loader(), tiny.loader(n=32), ckpt_path=ckpt)
    assert again.global_step == 8
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, last["model_state_dict"][name])


def test_tracking_callback_records_the_run_in_sqlite(tiny, tmp_path):
    database = tmp_path / "t.db"
    tracker = ExperimentTracker("lightning", database=database, handle_sigterm=False)
    callback = ExperimentTrackingCallback(tracker, params={"optim": {"lr": 0.1}})
    fit = tiny.trainer(
        max_epochs=1, callbacks=[callback], log_every_n_steps=1, num_sanity_val_steps=0
    )
    fit.fit(tiny.task_module(), tiny.loader(), tiny.loader(n=32))
    db = ExperimentDB(str(database))
    run = db.get_run(tracker.run_id)
    assert run["status"] == "completed"
    assert {"train/loss", "val/loss"} <= set(db.metric_keys(tracker.run_id))
    assert len(db.get_metric_history(tracker.run_id, "train/loss")) == 4
    db.close()


def test_tracking_callback_marks_a_failed_run(tiny, tmp_path):
    database = tmp_path / "t.db"
    tracker = ExperimentTracker("lightning", database=database, handle_sigterm=False)
    module = tiny.task_module()
    module.loss_fn = _nan_after(0)
    health = GradientHealthCallback(GradientMonitor(max_consecutive_failures=1))
    fit = tiny.trainer(max_steps=3, callbacks=[health, ExperimentTrackingCallback(tracker)])
    with pytest.raises(GradientHealthError):
        fit.fit(module, train_dataloaders=tiny.loader())
    db = ExperimentDB(str(database))
    assert db.get_run(tracker.run_id)["status"] == "failed"
    db.close()


def test_early_stopping_callback_stops_the_fit_after_patience_epochs(tiny):
    module = tiny.task_module()
    # a constant validation loss never improves: epoch 0 sets the best, 1 and 2 do not
    module.validation_step = lambda batch, batch_idx: module.log("val/loss", 1.0)
    policy = EarlyStopping("val/loss", patience=2)
    fit = tiny.trainer(
        max_epochs=10, callbacks=[EarlyStoppingCallback(policy)], num_sanity_val_steps=0
    )
    fit.fit(module, tiny.loader(), tiny.loader(n=32))
    assert fit.current_epoch == 3
    assert policy.reason == "val/loss did not improve for 2 epochs (best 1)"


def test_training_monitor_histograms_reach_tensorboard(tiny, tmp_path):
    tb = create_logger("tensorboard", save_dir=tmp_path, run_id="run")
    monitor = TrainingMonitor(log_frequency=2, histogram=True)
    fit = tiny.trainer(max_steps=4, logger=tb, callbacks=[monitor], log_every_n_steps=1)
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader())
    tb.finalize("success")
    # size guidance 0: keep every histogram (the reader keeps one by default)
    events = EventAccumulator(
        str(logger_dir(tmp_path, "run", "tensorboard")), size_guidance={"histograms": 0}
    )
    events.Reload()
    assert [e.step for e in events.Histograms("grad/distribution")] == [2, 4]
    assert {"grad/distribution/std", "grad/distribution/p99"} <= set(events.Tags()["scalars"])


def test_run_callback_per_batch_hooks_it_does_not_use_are_skipped_but_a_subclass_keeps_its_own(
    tiny,
):
    calls = []

    class Counting(RunCallback):
        def on_after_backward(self, trainer, pl_module):
            calls.append(trainer.global_step)

    def policies():
        return RunPolicies(best=BestMetric("val/loss", "min"), print_epochs=False)

    # Lightning skips a hook that is not callable: no dispatch for the unused ones
    assert RunCallback(policies()).on_after_backward is None
    assert RunCallback(policies()).on_before_zero_grad is None
    fit = tiny.trainer(max_steps=3, callbacks=[Counting(policies())])
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader())
    assert calls == [0, 1, 2]


def test_run_callback_skips_the_pre_step_hook_only_when_no_policy_acts_there(tiny):
    """Without health, lr or layer statistics there is no per-step pre-step call at all."""
    best = BestMetric("val/loss", "min")
    idle = RunCallback(RunPolicies(best=best, print_epochs=False))
    assert idle.on_before_optimizer_step is None
    health = HealthPolicy(GradientMonitor(), "skip")
    checking = RunCallback(RunPolicies(best=best, health=health, print_epochs=False))
    assert callable(checking.on_before_optimizer_step)
    fit = tiny.trainer(max_steps=3, callbacks=[checking])
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader())
    assert health.last is not None and health.last.num_parameters > 0


def test_a_task_module_runs_the_pre_step_policies_from_its_own_hook(tiny):
    """During a fit the module's hook checks (no callback dispatch); after it, even a failed
    one, the module runs nothing and the callback has its own hook back."""
    health = HealthPolicy(GradientMonitor(max_consecutive_failures=2), "stop")
    callback = RunCallback(
        RunPolicies(best=BestMetric("val/loss", "min"), health=health, print_epochs=False)
    )
    seen = []

    class Watching(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, *args):
            seen.append((callback.on_before_optimizer_step, pl_module.step_policies))
            # a copy (as weight-averaging callbacks make) takes neither trainer nor policies
            copied = copy.deepcopy(pl_module)
            assert copied.step_policies is None and copied._trainer is None

    module = tiny.task_module()
    fit = tiny.trainer(max_steps=3, callbacks=[callback, Watching()])
    fit.fit(module, train_dataloaders=tiny.loader())
    assert len(seen) == 3 and all(hook is None and lent is not None for hook, lent in seen)
    assert health.last is not None and health.last.num_parameters == 4
    assert module.step_policies is None and callable(callback.on_before_optimizer_step)
    module.loss_fn = _nan_after(0)
    with pytest.raises(GradientHealthError, match="2 consecutive unhealthy"):
        tiny.trainer(max_steps=10, callbacks=[callback]).fit(
            module, train_dataloaders=tiny.loader()
        )
    assert health.skipped_steps == 1  # the first unhealthy step was refused, then the stop
    assert module.step_policies is None and callable(callback.on_before_optimizer_step)


def test_a_run_callback_subclass_keeps_its_own_pre_step_hook(tiny):
    steps = []

    class Own(RunCallback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            steps.append(trainer.global_step)
            super().on_before_optimizer_step(trainer, pl_module, optimizer)

    health = HealthPolicy(GradientMonitor(), "skip")
    module = tiny.task_module()
    callback = Own(RunPolicies(best=BestMetric("val/loss", "min"), health=health))
    tiny.trainer(max_steps=3, callbacks=[callback]).fit(module, train_dataloaders=tiny.loader())
    assert steps == [0, 1, 2] and module.step_policies is None
    assert health.last is not None
