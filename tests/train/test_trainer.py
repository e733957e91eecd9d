"""Trainer end to end on the built-in digits task: results, files, tracking, logs."""

from __future__ import annotations

import csv

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.checkpoint import CheckpointManager
from trainforge.config import TrainingConfig, load_config
from trainforge.hooks import HookEvent, HookManager
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer


def config_for(tmp_path, *extra: str) -> TrainingConfig:
    return load_config(
        template="digits",
        cli=[
            f"run.output_dir={tmp_path / 'outputs'}",
            f"tracking.database=sqlite:///{tmp_path / 'tracking.db'}",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=5",
            *extra,
        ],
        environ={},
    )


@pytest.mark.slow
def test_train_digits_writes_a_complete_run(tmp_path):
    config = config_for(tmp_path, "trainer.checkpoint_every_n_steps=10")
    events = []
    hooks = HookManager()
    hooks.register(
        [HookEvent.ON_TRAIN_START, HookEvent.ON_EPOCH_END, HookEvent.ON_TRAIN_END],
        lambda ctx: events.append(ctx.event),
    )
    results = Trainer(training_config=config, hooks=hooks, command=["trainforge", "train"]).train()

    assert results.epochs_completed == 2
    assert results.global_step == 2 * 23  # 1437 samples / 64 per batch
    assert results.best_metric is not None and results.best_metric > 0.5
    assert list(results.metrics_summary["epoch"]) == [0, 1]
    assert {"train/loss", "val/loss", "val/acc"} <= set(results.metrics_summary.columns)
    assert events == [
        HookEvent.ON_TRAIN_START,
        HookEvent.ON_EPOCH_END,
        HookEvent.ON_EPOCH_END,
        HookEvent.ON_TRAIN_END,
    ]

    run_dir = results.run_dir
    assert (run_dir / "command.txt").read_text().strip() == "trainforge train"
    saved = TrainingConfig.load(run_dir / "config.yaml")
    assert saved.provenance_of("optim.lr").source == "template:digits"

    with (run_dir / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get("val/acc") for row in rows)
    tb = EventAccumulator(str(run_dir / "tensorboard"))
    tb.Reload()
    assert {"train/loss", "val/loss", "val/acc"} <= set(tb.Tags()["scalars"])

    manager = CheckpointManager(run_dir / "checkpoints", monitor="val/acc", mode="max")
    assert all(report.ok for report in manager.verify())
    checkpoint = manager.load("best", restore_rng=False)
    assert checkpoint["metrics"]["val/acc"] == pytest.approx(results.best_metric)
    step_checkpoints = [c for c in manager.list_checkpoints() if c.global_step % 23 != 0]
    assert step_checkpoints, "mid-epoch checkpoints are written every 10 steps"

    db = ExperimentDB(f"sqlite:///{tmp_path / 'tracking.db'}")
    run = db.get_run(int(results.run_id.removeprefix("run-")))
    assert run["status"] == "completed"
    history = db.get_metric_history(int(results.run_id.removeprefix("run-")), "val/acc")
    assert len(history) == 2


def test_user_model_and_data_objects(tmp_path):
    config = config_for(
        tmp_path,
        "task.name=blobs",
        "task.num_classes=3",
        "task.input_dim=4",
        "checkpoint.monitor=val/loss",
        "checkpoint.mode=min",
        "tracking.enabled=false",
        "trainer.max_epochs=1",
    )
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(96, 4, generator=generator)
    labels = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    data = torch.utils.data.TensorDataset(inputs, labels)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    results = Trainer(model, config).train(data, data)
    assert results.epochs_completed == 1
    assert results.run_id.startswith("run-")  # untracked runs get a timestamped folder
    assert results.checkpoint_path is not None and results.checkpoint_path.exists()
