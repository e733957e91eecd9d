"""Data-parallel training: ``trainforge train trainer.strategy=ddp trainer.devices=2``.

Lightning launches the second process by re-running the command; the test runs the real
CLI and checks that the two processes made one run: one folder, one tracked run, verified
checkpoints written by rank zero, and validation metrics reduced over both halves.
"""

from __future__ import annotations

import pytest
import torch

from trainforge.checkpoint import CheckpointManager
from trainforge.config import TrainingConfig
from trainforge.engine.metrics import compare_profiles, confidence_metrics, profile_dataset
from trainforge.tracking import ExperimentDB
from trainforge.train import _build as build

pytestmark = pytest.mark.slow

DDP = [
    "trainer.engine=lightning",
    "trainer.strategy=ddp",
    "trainer.devices=2",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.checkpoint_every_n_steps=5",
    "trainer.log_every_n_steps=4",
    "loggers.tensorboard.enabled=true",
]


def _full_validation_loss(config, checkpoint) -> float:
    """The mean validation loss over the whole split, in one process."""
    spec = build.task_spec_from_config(config)
    model = build.build_model_for(config, spec)
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    loss_fn = build.build_loss(spec)
    _, val = build.build_datasets_for(config, spec)
    items = [val[i] for i in range(len(val))]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    with torch.no_grad():
        return float(loss_fn(model(batch["inputs"]), batch))


def _full_validation_quality(config, checkpoint) -> dict[str, float]:
    """Confidence and drift over the whole split, in one process."""
    spec = build.task_spec_from_config(config)
    model = build.build_model_for(config, spec)
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    train, val = build.build_datasets_for(config, spec)
    items = [val[i] for i in range(len(val))]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    with torch.no_grad():
        logits = model(batch["inputs"])
    quality = confidence_metrics(logits, batch["labels"], config.callbacks.confidence.bins)
    drift = config.callbacks.drift
    profiles = [profile_dataset(d, spec.modality, drift.max_samples) for d in (train, val)]
    jsd = compare_profiles(*profiles, warning=drift.warning, critical=drift.critical).details
    return {
        "val/ece": quality.expected_calibration_error,
        "val/top1_confidence": quality.top1_confidence,
        "val/entropy": quality.entropy,
        **{f"drift/{name}/jsd": value for name, value in jsd.items()},
    }


def test_two_process_ddp_on_cpu_makes_one_run(workdir, train_cli):
    quality = ["callbacks.confidence.enabled=true", "callbacks.drift.enabled=true"]
    done = train_cli(workdir, *DDP, *quality)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in done.stderr
    assert done.stdout.count("training finished") == 1  # rank one reports nothing

    (run_dir,) = (workdir / "outputs").glob("run-*")
    assert (run_dir / "config.yaml").is_file()
    # 1,437 training images, 719 per process, batches of 64: 12 steps per epoch
    manager = CheckpointManager(run_dir / "checkpoints", monitor="val/acc", mode="max")
    checkpoints = manager.list_checkpoints()
    assert max(c.global_step for c in checkpoints) == 24
    assert all(report.ok for report in manager.verify())
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1

    db = ExperimentDB(f"sqlite:///{workdir / 'tracking.db'}")
    (run,) = db.search_runs()
    assert run["status"] == "completed"
    assert db.get_run(run["run_id"])["tags"]["world_size"] in (2, "2")

    # val/loss is the mean over both processes' halves: the whole split's loss
    last = manager.load("last", restore_rng=False)
    history = db.get_metric_history(run["run_id"], "val/loss")
    logged = history[history["step"] == last["global_step"]]["value"].tolist()
    config = TrainingConfig.load(run_dir / "config.yaml")
    assert logged == pytest.approx([_full_validation_loss(config, last)], rel=1e-5)
    # so are the confidence values (each rank's bins added up) and the drift
    expected = _full_validation_quality(config, last)
    assert len([k for k in expected if k.startswith("drift/")]) == 64
    for key, value in expected.items():
        history = db.get_metric_history(run["run_id"], key)
        logged = history[history["step"] == last["global_step"]]["value"].tolist()
        assert logged == pytest.approx([value], rel=1e-5, abs=1e-7), key


def test_ddp_resume_from_a_mid_epoch_checkpoint_is_bit_exact(workdir, train_cli):
    done = train_cli(workdir, *DDP, "checkpoint.keep_last_n=10")
    assert done.returncode == 0, done.stderr[-3000:]
    (first,) = (workdir / "outputs").glob("run-*")
    manager = CheckpointManager(first / "checkpoints", monitor=None)
    # one checkpoint per save point: rank one writes none
    saved = sorted(c.global_step for c in manager.list_checkpoints())
    assert saved == [5, 10, 12, 15, 20, 24]
    (middle,) = [c for c in manager.list_checkpoints() if c.global_step == 20]  # epoch 1

    resumed = train_cli(workdir, *DDP, "checkpoint.keep_last_n=10", "--resume", str(middle.path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (second,) = [p for p in (workdir / "outputs").glob("run-*") if p != first]
    expected = manager.load("last", restore_rng=False)
    actual = CheckpointManager(second / "checkpoints", monitor=None).load("last", restore_rng=False)
    assert actual["global_step"] == expected["global_step"] == 24
    for key, tensor in expected["model_state_dict"].items():
        assert torch.equal(tensor, actual["model_state_dict"][key]), key


def test_a_rank_started_without_a_launchers_variables_is_refused_clearly(
    workdir, train_cli, monkeypatch
):
    # rank one started by hand: no launcher told it where rank zero listens
    monkeypatch.setenv("LOCAL_RANK", "1")
    for name in ("TRAINFORGE_DDP_RUN_DIR", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    done = train_cli(workdir, *DDP)
    assert done.returncode == 1
    assert "MASTER_ADDR, MASTER_PORT are not set" in done.stderr
    assert "torchrun" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "outputs").exists() or not list((workdir / "outputs").glob("run-*"))
