"""Faults of a real ``trainforge train`` process: SIGKILL and resume, divergence, mismatch."""

from __future__ import annotations

import os
import sys

import pytest

from trainforge.checkpoint import CheckpointManager
from trainforge.tracking import ExperimentDB

from .conftest import assert_bitwise_equal, kill_at_first_checkpoint, last_checkpoint

pytestmark = pytest.mark.slow

RESUMABLE = [
    "trainer.max_epochs=1",
    "trainer.checkpoint_every_n_steps=3",
    "tracking.enabled=false",
]


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path, train_cli, fast_args, engine):
    args = [*fast_args, *RESUMABLE, f"trainer.engine={engine}"]
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    done = train_cli(reference_dir, *args)
    assert done.returncode == 0, done.stderr

    work = tmp_path / "killed"
    work.mkdir()
    env = {**os.environ}
    # killed as soon as the first step checkpoint (step 3 of 23 in epoch 0) is complete
    kill_at_first_checkpoint([sys.executable, "-m", "trainforge.cli", "train", *args], work, env)

    killed_at = last_checkpoint(work / "outputs")
    assert 0 < killed_at["global_step"] < 23, "the kill was not mid-epoch"

    resumed = train_cli(work, *args, "--resume", "last")
    assert resumed.returncode == 0, resumed.stderr

    expected = last_checkpoint(reference_dir / "outputs")
    actual = last_checkpoint(work / "outputs")
    assert actual["global_step"] == expected["global_step"] == 23
    assert_bitwise_equal(expected["model_state_dict"], actual["model_state_dict"], "model")
    assert_bitwise_equal(
        expected["optimizer_state_dict"], actual["optimizer_state_dict"], "optimizer"
    )
    assert_bitwise_equal(
        expected["scheduler_state_dict"], actual["scheduler_state_dict"], "scheduler"
    )


def test_divergence_stops_with_remediation_and_keeps_the_last_good_checkpoint(
    workdir, train_cli, fast_args
):
    proc = train_cli(
        workdir,
        *fast_args,
        "optim.lr=1e6",
        "trainer.checkpoint_every_n_steps=1",
        "callbacks.gradient_health.max_consecutive_failures=3",
    )
    assert proc.returncode == 1
    assert "consecutive unhealthy gradient checks" in proc.stderr
    assert "gradient_clip_val" in proc.stderr  # a remediation step names the config key
    assert "Traceback" not in proc.stderr

    db = ExperimentDB(f"sqlite:///{workdir / 'tracking.db'}")
    (run,) = db.list_runs()
    assert run["status"] == "failed"

    (run_dir,) = (workdir / "outputs").glob("run-*")
    manager = CheckpointManager(run_dir / "checkpoints", monitor=None)
    assert manager.list_checkpoints(), "the checkpoints written before the failure are kept"
    assert all(report.ok for report in manager.verify())
    loaded = manager.load("last", restore_rng=False)
    assert loaded["model_state_dict"]


def test_resume_with_a_changed_model_is_refused_or_warned(workdir, train_cli, fast_args):
    first = train_cli(workdir, *fast_args, "trainer.max_epochs=1", "tracking.enabled=false")
    assert first.returncode == 0, first.stderr

    changed = ["model.kwargs.hidden_dims=[32]", "tracking.enabled=false"]
    strict = train_cli(workdir, *fast_args, *changed, "--resume", "last")
    assert strict.returncode == 1
    assert "model.kwargs.hidden_dims" in strict.stderr
    assert "breaking" in strict.stderr
    assert "Traceback" not in strict.stderr

    warn = train_cli(
        workdir,
        *fast_args,
        *changed,
        "trainer.max_epochs=1",
        "checkpoint.resume_mode=warn",
        "--resume",
        "last",
    )
    assert warn.returncode == 0, warn.stderr
    assert "resuming a different model" in warn.stderr


# mlflow 3.17 configures its SQLAlchemy mappers with the deprecated noload strategy
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_default_train_run_is_listed_verified_and_logged(workdir, train_cli, monkeypatch, capsys):
    """What `make train` does, end to end, on the default (Lightning) driver.

    TensorBoard (read by its own EventAccumulator) has the losses and the monitor's
    per-layer gradient norms; the MLflow run reads back through MlflowClient; the W&B
    offline run file exists; the tracked run is completed; the checkpoints verify.
    """
    import json

    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainforge.cli import main

    done = train_cli(
        workdir,
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        "loggers.mlflow.enabled=true",
        "loggers.wandb.enabled=true",
    )
    assert done.returncode == 0, done.stderr
    assert "training finished" in done.stdout
    monkeypatch.chdir(workdir)
    assert main(["runs", "list", "--db", f"sqlite:///{workdir / 'tracking.db'}", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["status"] == "completed"
    (run_dir,) = (workdir / "outputs").glob("run-*")
    assert main(["ckpt", "verify", str(run_dir / "checkpoints")]) == 0
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "grad/global_norm"} <= tags
    assert any(t.startswith("grad/net.") and t.endswith("/norm") for t in tags)

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "trainforge"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert len(client.get_metric_history(logged.info.run_id, "val/loss")) == 3
    assert list((run_dir / "wandb").glob("wandb/offline-run-*/run-*.wandb"))


def test_bad_model_path_and_batch_shape_name_the_config_key(workdir, train_cli, fast_args):
    missing = train_cli(workdir, *fast_args, "model.name=nowhere.models:Net")
    assert missing.returncode == 1
    assert "model.name='nowhere.models:Net' cannot be built" in missing.stderr
    wrong_shape = train_cli(workdir, *fast_args, "task.input_dim=32", "tracking.enabled=false")
    assert wrong_shape.returncode == 1
    assert "the model or the loss cannot use this batch" in wrong_shape.stderr
    assert "data.name" in wrong_shape.stderr
    assert "Traceback" not in missing.stderr + wrong_shape.stderr


@pytest.mark.parametrize(
    ("engine", "key", "message"),
    [
        ("plain", "tracking.database", "cannot create the folder of the tracking database"),
        ("plain", "run.output_dir", "cannot write the run folder"),
        ("plain", "checkpoint.dirpath", "cannot create the checkpoint folder"),
        ("lightning", "checkpoint.dirpath", "cannot create the checkpoint folder"),
        ("plain", "loggers.csv.save_dir", "the csv logger cannot write under"),
        ("lightning", "loggers.tensorboard.save_dir", "the tensorboard logger cannot write"),
    ],
)
def test_a_folder_that_cannot_be_made_is_a_clear_error_and_the_run_fails(
    workdir, monkeypatch, capsys, engine, key, message
):
    from trainforge.cli import main

    monkeypatch.chdir(workdir)
    (workdir / "a-file").write_text("a file where a folder should be")
    blocked = workdir / "a-file" / "sub"
    where = f"{blocked}/t.db" if key == "tracking.database" else str(blocked)
    db = workdir / "tracking.db"
    tracking = [] if key == "tracking.database" else [f"tracking.database={db}"]
    args = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", f"trainer.engine={engine}"]
    assert main(["train", *args, *tracking, f"{key}={where}"]) == 1
    err = capsys.readouterr().err
    assert message in err and str(blocked) in err and "Traceback" not in err
    if tracking:  # the run was opened before the folder failed: it is marked failed
        assert [r["status"] for r in ExperimentDB(str(db)).list_runs()] == ["failed"]
