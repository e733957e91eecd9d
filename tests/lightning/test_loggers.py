"""The logger factory: real files, read back with the tools that own the format."""

import csv
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.config import load_config
from trainforge.errors import MissingDependencyError, RegistryError
from trainforge.lightning import create_logger, logger_dir
from trainforge.train._run_setup import build_loggers


def test_csv_logger_writes_metrics_in_the_run_folder(tmp_path):
    logger = create_logger("csv", save_dir=tmp_path, run_id="run-a")
    logger.log_metrics({"train/loss": 0.5}, step=1)
    logger.log_metrics({"train/loss": 0.25, "val/acc": 0.9}, step=2)
    logger.finalize("success")
    path = logger_dir(tmp_path, "run-a", "csv") / "metrics.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["train/loss"]) for r in rows] == [0.5, 0.25]
    assert rows[1]["val/acc"] == "0.9"


def test_tensorboard_logger_is_readable_by_tensorboard(tmp_path):
    logger = create_logger("tb", save_dir=tmp_path, run_id="run-b")
    for step in range(3):
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    logger.finalize("success")
    events = EventAccumulator(str(logger_dir(tmp_path, "run-b", "tensorboard")))
    events.Reload()
    values = [e.value for e in events.Scalars("train/loss")]
    assert values == pytest.approx([1.0, 0.5, 1 / 3])


def test_two_runs_never_share_files(tmp_path):
    a = create_logger("csv", save_dir=tmp_path, run_id="a")
    b = create_logger("csv", save_dir=tmp_path, run_id="b")
    assert a.log_dir != b.log_dir


def test_unknown_logger_suggests():
    with pytest.raises(RegistryError, match="did you mean 'tensorboard'"):
        create_logger("tensorbord", save_dir=".", run_id="x")


@pytest.mark.parametrize(
    ("kind", "module", "extra"),
    [("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow"), ("comet", "comet_ml", "comet")],
)
def test_missing_package_names_the_extra(tmp_path, monkeypatch, kind, module, extra):
    # "not installed" without uninstalling: sys.modules[name] = None makes the import
    # system (imports and importlib.util.find_spec alike) treat the module as absent
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'trainforge\[{extra}\]'"):
        create_logger(kind, save_dir=tmp_path, run_id="x")
    config = load_config(
        cli=[f"run.output_dir={tmp_path}", f"loggers.{kind}.enabled=true"], environ={}
    )
    with pytest.raises(MissingDependencyError, match=rf"needs the package '{module}'"):
        build_loggers(config, "run-000001")
    assert not (tmp_path / "x").exists()
