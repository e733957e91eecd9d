"""A checkpoint of either driver resumes on the other, bit-exact, or is refused clearly;
bad config combinations fail before training, the same way on both drivers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainforge.checkpoint import CheckpointManager
from trainforge.cli._app import main
from trainforge.config import load_config
from trainforge.errors import ResumeError
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")

ENGINES = ["plain", "lightning"]


def _config(folder: Path, engine: str, *extra: str):
    return load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={folder}",
            f"tracking.database=sqlite:///{folder / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "trainer.enable_progress_bar=false",
            "trainer.checkpoint_every_n_steps=4",
            "checkpoint.keep_last_n=20",
            "loggers.tensorboard.enabled=false",
            *extra,
        ],
        environ={},
    )


def _last_state(run_dir: Path) -> dict:
    return CheckpointManager(run_dir / "checkpoints").load("last", restore_rng=False)


@pytest.mark.slow
@pytest.mark.parametrize(("writer", "reader"), [("plain", "lightning"), ("lightning", "plain")])
def test_a_mid_epoch_checkpoint_resumes_bit_exact_on_the_other_driver(tmp_path, writer, reader):
    first = Trainer(training_config=_config(tmp_path / "a", writer), log_config=False).train()
    # step 4 of 6 in epoch 0: the middle of an epoch
    mid = next(
        p for p in (first.run_dir / "checkpoints").iterdir() if p.name.endswith("step000004")
    )
    resumed = Trainer(training_config=_config(tmp_path / "b", reader), log_config=False).train(
        resume_from=mid
    )
    assert resumed.global_step == first.global_step == 12
    expected, actual = _last_state(first.run_dir), _last_state(resumed.run_dir)
    for part in ("model_state_dict", "optimizer_state_dict"):
        flat_a = _tensors(expected[part])
        flat_b = _tensors(actual[part])
        assert flat_a.keys() == flat_b.keys()
        assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a), part
    assert (
        expected["scheduler_state_dict"]["last_epoch"]
        == actual["scheduler_state_dict"]["last_epoch"]
    )
    # the resumed run continued the policies: the same best epoch and value
    assert resumed.best_epoch == first.best_epoch
    assert actual["custom_state"]["driver"] == reader


def _tensors(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    found: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        found[prefix] = state
    elif isinstance(state, dict):
        for key, value in state.items():
            found.update(_tensors(value, f"{prefix}/{key}"))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            found.update(_tensors(value, f"{prefix}/{i}"))
    return found


@pytest.mark.slow
def test_a_lightning_checkpoint_inside_an_accumulation_window_is_refused_by_plain(tmp_path):
    config = _config(tmp_path / "a", "lightning", "trainer.accumulate_grad_batches=2")
    first = Trainer(training_config=config, log_config=False).train()
    # the run's own checkpoints are all at optimizer steps; one written by other Lightning
    # code after batch 3 of a 2-batch window holds half a window of gradients
    manager = CheckpointManager(first.run_dir / "checkpoints", monitor="val/acc", mode="max")
    checkpoint = manager.load("last", restore_rng=False)
    position = checkpoint["custom_state"]["position"]
    position["epoch"], position["batches_done"] = 0, 3  # in epoch 0, as saved below
    manager.save(
        model=_model_of(checkpoint),
        epoch=0,
        global_step=1,
        metrics={"val/acc": float("nan")},
        custom_state=checkpoint["custom_state"],
        config=checkpoint["config"],
    )
    with pytest.raises(ResumeError, match="inside an accumulation window") as info:
        Trainer(
            training_config=_config(tmp_path / "b", "plain", "trainer.accumulate_grad_batches=2"),
            log_config=False,
        ).train(resume_from=manager.root)
    assert "trainer.engine=lightning" in info.value.user_message()


def _model_of(checkpoint: dict) -> torch.nn.Module:
    from trainforge.zoo import MLP

    model = MLP(64, 10, hidden_dims=(128, 64))
    model.load_state_dict(checkpoint["model_state_dict"])
    return model


BAD_COMBINATIONS = [
    (["trainer.precision=16-mixed"], "trainer.precision: 16-mixed needs a CUDA device"),
    (["trainer.accelerator=gpu"], "trainer.accelerator: gpu needs a CUDA device"),
    (["trainer.accelerator=cpuu"], "unknown accelerator 'cpuu': did you mean cpu?"),
    (
        ["callbacks.early_stopping.enabled=true", "callbacks.early_stopping.monitor=val/accuracy"],
        "'val/accuracy' is not a metric this run produces: did you mean val/acc?",
    ),
    (["checkpoint.monitor=val/los"], "checkpoint.monitor: 'val/los' is not a metric"),
    (
        [
            "loggers.csv.enabled=false",
            "loggers.tensorboard.enabled=false",
            "tracking.enabled=false",
        ],
        "callbacks.lr_monitor.enabled: the learning rate would be logged nowhere",
    ),
]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the device checks assume no GPU")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("overrides", "message"), BAD_COMBINATIONS)
def test_bad_combinations_fail_before_training_on_both_drivers(
    tmp_path, capsys, engine, overrides, message
):
    out = tmp_path / "outputs"
    code = main(
        [
            "train",
            f"trainer.engine={engine}",
            f"run.output_dir={out}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=1",
            *overrides,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing trained, no run folder


def test_a_bad_combination_exits_1_without_a_traceback_from_a_real_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "trainforge.cli", "train", "trainer.accelerator=cpuu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "did you mean cpu?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_keep_every_n_epochs_keeps_the_best_in_max_mode(tmp_path, engine):
    results = Trainer(
        training_config=_config(
            tmp_path,
            engine,
            "trainer.max_epochs=4",
            "trainer.checkpoint_every_n_steps=null",
            "checkpoint.keep_every_n_epochs=2",
            "checkpoint.keep_best_k=1",
            "checkpoint.keep_last_n=1",
        ),
        log_config=False,
    ).train()
    manager = CheckpointManager(results.run_dir / "checkpoints", monitor="val/acc", mode="max")
    kept = manager.list_checkpoints()
    epochs = sorted(m.epoch for m in kept)
    # epochs 0 and 2 (every 2nd), the newest (3) and the best by val/acc (max)
    best = max(kept, key=lambda m: (m.metric, m.epoch))
    assert best.epoch == results.best_epoch
    assert {0, 2, 3, results.best_epoch} == set(epochs)
    assert manager.get_best().name == best.name


MAX_EPOCHS_BELOW = (
    "the checkpoint is at the end of epoch 1 (2 epochs trained), but trainer.max_epochs is 1: "
    "a run of 1 epochs ends after epoch 0"
)
SHORT = ["trainer.limit_train_batches=2", "trainer.checkpoint_every_n_steps=3"]


@pytest.mark.parametrize(("writer", "reader"), [("plain", "lightning"), ("lightning", "plain")])
def test_max_epochs_below_the_checkpoint_is_one_error_before_training(tmp_path, writer, reader):
    out = tmp_path / "runs"
    first = Trainer(training_config=_config(out, writer, *SHORT), log_config=False).train()
    assert first.epochs_completed == 2
    config = _config(out, reader, *SHORT, "trainer.max_epochs=1")
    with pytest.raises(ResumeError) as info:
        Trainer(training_config=config, log_config=False).train(resume_from="last")
    message = info.value.user_message()
    assert MAX_EPOCHS_BELOW in message and info.value.key == "trainer.max_epochs"
    assert "raise trainer.max_epochs to 3 or more" in message and "start a fresh run" in message
    assert [p.name for p in out.glob("run-*")] == [first.run_dir.name]  # nothing new written
    # a checkpoint in the middle of epoch 1 does not fit max_epochs=1 either
    checkpoints = (first.run_dir / "checkpoints").iterdir()
    mid = next(p for p in checkpoints if p.name.endswith("step000003"))
    with pytest.raises(ResumeError, match=r"at epoch 1 \(1 batches into it\)"):
        Trainer(training_config=config, log_config=False).train(resume_from=mid)


def test_max_epochs_below_the_checkpoint_exits_1_without_a_traceback(tmp_path):
    out = tmp_path / "runs"
    Trainer(training_config=_config(out, "plain", *SHORT), log_config=False).train()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainforge.cli",
            "train",
            "--template",
            "digits",
            "trainer.engine=lightning",
            f"run.output_dir={out}",
            "tracking.enabled=false",
            "trainer.max_epochs=1",
            "--resume",
            "last",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert MAX_EPOCHS_BELOW in result.stderr
    assert "Traceback" not in result.stderr and "Misconfiguration" not in result.stderr
