"""The parity matrix: the same scripted run on both drivers takes the same decisions.

Every policy of a run (best metric, early stopping with and without NaN, the
gradient-health policy for NaN and for finite explosions, checkpoint cadence, lr logging,
divergence) runs on ``plain`` and on ``lightning`` with the same config, model and data;
the two must write the same checkpoints, skip the same steps, stop at the same epoch,
report the same ``metrics_summary`` columns and, where the math is the same, end with
bitwise equal weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainforge.checkpoint import CheckpointManager
from trainforge.config import load_config
from trainforge.errors import GradientHealthError
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer
from trainforge.zoo import MLP

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
]

NAN = math.nan


class Scripted(nn.Module):
    """The digits MLP with scripted faults: its outputs scaled on given training calls.

    ``faults`` maps the 1-based number of a training forward call (one per batch, so one
    per optimizer step here) to a factor: NaN makes every gradient NaN, 1e6 makes them
    finite and huge. ``nan_eval_from`` makes validation outputs NaN once that many
    training calls have run.
    """

    def __init__(self, faults: dict[int, float] | None = None, nan_eval_from: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = MLP(64, 10, hidden_dims=(32,), dropout=0.1)
        self.faults = faults or {}
        self.nan_eval_from = nan_eval_from
        self.calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.net(inputs)
        if self.training:
            self.calls += 1
            factor = self.faults.get(self.calls)
            return out if factor is None else out * factor
        if self.nan_eval_from and self.calls >= self.nan_eval_from:
            return out * NAN
        return out


@dataclass
class Outcome:
    """What a run decided, in driver-independent terms."""

    checkpoints: list[str]
    columns: list[str]
    epochs: list[int]
    weights: dict[str, torch.Tensor]
    anomalies: list[int] = field(default_factory=list)
    skipped: int = 0
    error: BaseException | None = None
    lr: list[tuple[int, float]] = field(default_factory=list)
    best_epoch: int | None = None


class _Anomalies:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_gradient_anomaly(self, step: int) -> None:
        self.steps.append(step)


def _config(tmp_path: Path, engine: str, *overrides: str) -> Any:
    """The scripted run's config: 3 epochs of 4 batches, every decision logged."""
    out = tmp_path / engine
    return load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={out}",
            f"tracking.database=sqlite:///{out / 't.db'}",
            "trainer.max_epochs=3",
            "trainer.limit_train_batches=4",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=2",
            "callbacks.monitoring.log_frequency=2",
            "checkpoint.keep_last_n=100",
            "loggers.tensorboard.enabled=false",
            *overrides,
        ],
        environ={},
    )


def _run(tmp_path: Path, engine: str, *overrides: str, model: Scripted | None = None) -> Outcome:
    config = _config(tmp_path, engine, *overrides)
    out = tmp_path / engine
    anomalies = _Anomalies()
    model = model or Scripted()
    error = results = None
    try:
        results = Trainer(model, config, hooks=anomalies, log_config=False).train()
    except GradientHealthError as exc:
        error = exc
    run_dir = next(p for p in out.iterdir() if p.name.startswith("run-"))
    manager = CheckpointManager(run_dir / "checkpoints")
    names = sorted(m.name for m in manager.list_checkpoints())
    last = manager.load("last", restore_rng=False) if names else None
    db = ExperimentDB(f"sqlite:///{out / 't.db'}")
    run_id = db.list_runs()[0]["run_id"]
    lr = []
    if "lr/pg1" in db.metric_keys(run_id):
        history = db.get_metric_history(run_id, "lr/pg1")
        lr = [(int(s), float(v)) for s, v in zip(history["step"], history["value"])]
    db.close()
    summary = results.metrics_summary if results is not None else None
    return Outcome(
        checkpoints=names,
        columns=sorted(summary.columns) if summary is not None else [],
        epochs=[int(e) for e in summary["epoch"]] if summary is not None else [],
        weights={k: v.clone() for k, v in model.state_dict().items()},
        anomalies=anomalies.steps,
        skipped=(last["custom_state"]["policies"]["health"] or {}).get("skipped_steps", 0)
        if last
        else 0,
        error=error,
        lr=lr,
        best_epoch=results.best_epoch if results is not None else None,
    )


def _both(tmp_path: Path, *overrides: str, **model: Any) -> tuple[Outcome, Outcome]:
    plain = _run(tmp_path, "plain", *overrides, model=Scripted(**model))
    lightning = _run(tmp_path, "lightning", *overrides, model=Scripted(**model))
    return plain, lightning


def _same_weights(a: Outcome, b: Outcome) -> bool:
    return a.weights.keys() == b.weights.keys() and all(
        torch.equal(a.weights[k], b.weights[k]) for k in a.weights
    )


def _assert_same_decisions(a: Outcome, b: Outcome) -> None:
    assert a.checkpoints == b.checkpoints
    assert a.columns == b.columns
    assert a.epochs == b.epochs
    assert a.anomalies == b.anomalies
    assert a.skipped == b.skipped
    assert type(a.error) is type(b.error)
    assert a.best_epoch == b.best_epoch


def test_best_metric_checkpoints_and_summary(tmp_path):
    plain, lightning = _both(tmp_path, "trainer.checkpoint_every_n_steps=3")
    _assert_same_decisions(plain, lightning)
    assert plain.columns == sorted(
        ["epoch", "train/loss", "val/loss", "val/acc", "system/epoch_time_s", "system/throughput"]
    )
    assert plain.epochs == [0, 1, 2]
    assert plain.best_epoch is not None
    assert _same_weights(plain, lightning)


def test_early_stopping_without_nan(tmp_path):
    # a learning rate too small to move val/loss by min_delta: epoch 0 sets the best,
    # epoch 1 does not improve on it, patience 1 stops there
    plain, lightning = _both(
        tmp_path,
        "optim.lr=1e-9",
        "callbacks.early_stopping.enabled=true",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=0.01",
    )
    _assert_same_decisions(plain, lightning)
    assert plain.epochs == [0, 1]
    assert _same_weights(plain, lightning)


def test_early_stopping_on_a_nan_metric(tmp_path):
    # validation turns NaN after epoch 0 (4 training calls): stop at once, patience or not
    plain, lightning = _both(
        tmp_path,
        "callbacks.early_stopping.enabled=true",
        "callbacks.early_stopping.patience=5",
        nan_eval_from=8,
    )
    _assert_same_decisions(plain, lightning)
    assert plain.epochs == [0, 1]


@pytest.mark.parametrize("fault", [NAN, 1e6], ids=["nan", "explosion"])
def test_stop_policy_skips_then_stops(tmp_path, fault):
    plain, lightning = _both(
        tmp_path,
        "callbacks.gradient_health.max_consecutive_failures=3",
        faults={3: fault, 4: fault, 5: fault},
    )
    _assert_same_decisions(plain, lightning)
    assert isinstance(plain.error, GradientHealthError)
    assert plain.anomalies == [3, 4, 5]
    # the unhealthy steps moved nothing, and no checkpoint was written while unhealthy
    assert _same_weights(plain, lightning)
    assert all(torch.isfinite(w).all() for w in plain.weights.values())


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_skip_and_warn_policies(tmp_path, policy):
    plain, lightning = _both(
        tmp_path,
        f"callbacks.gradient_health.policy={policy}",
        "trainer.max_epochs=2",
        faults={3: NAN, 6: 1e6},
    )
    _assert_same_decisions(plain, lightning)
    assert plain.anomalies == [3, 6]
    # NaN steps are never taken; a finite explosion is taken only under warn
    assert plain.skipped == (2 if policy == "skip" else 1)
    assert plain.error is None and plain.epochs == [0, 1]
    assert _same_weights(plain, lightning)


def test_checkpoint_cadence(tmp_path):
    plain, lightning = _both(
        tmp_path, "checkpoint.save_interval_epochs=2", "trainer.checkpoint_every_n_steps=5"
    )
    _assert_same_decisions(plain, lightning)
    steps = [name.rsplit("step", 1)[1] for name in plain.checkpoints]
    # steps 5 and 10, the end of epoch 1 (step 8) and the last epoch (step 12)
    assert steps == ["000005", "000008", "000010", "000012"]


def test_lr_is_logged_at_the_same_steps_with_the_same_values(tmp_path):
    plain, lightning = _both(tmp_path, "trainer.max_epochs=2")
    assert plain.lr and plain.lr == lightning.lr
    assert [step for step, _ in plain.lr] == [2, 4, 6, 8]
    # cosine decay: the rate each logged step trained with, strictly falling
    rates = [rate for _, rate in plain.lr]
    assert rates == sorted(rates, reverse=True) and rates[0] < 0.003


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_divergence_stops_and_names_the_last_good_checkpoint(tmp_path, engine, caplog):
    with caplog.at_level("ERROR", logger="trainforge"):
        outcome = _run(tmp_path, engine, "optim.lr=1e6", "trainer.checkpoint_every_n_steps=1")
    assert isinstance(outcome.error, GradientHealthError)
    message = next(m for r in caplog.records if "last good checkpoint" in (m := r.getMessage()))
    assert outcome.checkpoints and outcome.checkpoints[-1] in message
    run_dir = next(p for p in (tmp_path / engine).iterdir() if p.name.startswith("run-"))
    manager = CheckpointManager(run_dir / "checkpoints")
    for meta in manager.list_checkpoints():
        state = manager.load(meta.path, restore_rng=False)["model_state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values()), meta.name


def test_an_epoch_cut_by_max_steps_is_validated_and_not_counted_on_both_drivers(tmp_path):
    """max_steps=6 with 4 batches an epoch ends inside epoch 1: both drivers validate it."""
    results = {}
    for engine in ("plain", "lightning"):
        config = _config(tmp_path, engine, "trainer.max_steps=6")
        results[engine] = Trainer(Scripted(), config, log_config=False).train()
    plain, lightning = results["plain"], results["lightning"]
    for result in (plain, lightning):
        assert (result.global_step, result.epochs_completed) == (6, 1)
        summary = result.metrics_summary
        assert summary["epoch"].tolist() == [0, 1]
        assert not summary["val/loss"].isna().any()  # the cut epoch has its validation
    assert (
        plain.metrics_summary["val/loss"].tolist() == lightning.metrics_summary["val/loss"].tolist()
    )
    assert plain.best_epoch == lightning.best_epoch
    assert plain.best_metric == pytest.approx(lightning.best_metric, rel=1e-6)  # val/acc
    assert plain.checkpoint_path.name == lightning.checkpoint_path.name
    for engine, result in results.items():  # resumed there, with nothing left to train
        config = _config(tmp_path, engine, "trainer.max_steps=6")
        again = Trainer(Scripted(), config, log_config=False).train(
            resume_from=str(result.checkpoint_path)
        )
        assert (again.global_step, again.epochs_completed) == (6, 1), engine
