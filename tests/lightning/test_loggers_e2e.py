"""Experiment loggers end to end: a real digits run, read back with each tool's own reader.

Every logger is enabled through the config (``loggers.<kind>.enabled``), trains under the
Lightning driver, and its output is opened the way a user would: MLflow's client, the W&B
offline run file (decoded with W&B's own protobuf records), Comet's offline archive,
TensorBoard's EventAccumulator, the CSV file.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.config import load_config
from trainforge.lightning import create_logger
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer
from trainforge.train._run_setup import build_loggers

pytestmark = [
    # mlflow 3.17 configures its SQLAlchemy mappers with the deprecated noload strategy
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]

# 2 epochs of 6 batches, logged every 2 steps: train/loss at steps 2, 4, ..., 12, and
# one validation per epoch, after steps 6 and 12 (both drivers count steps from 1)
TRAIN_STEPS = [2, 4, 6, 8, 10, 12]
VAL_STEPS = [6, 12]


def csv_losses(run_dir: Path) -> list[float]:
    """The train/loss column of the run's metrics.csv, in order."""
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        return [float(r["train/loss"]) for r in csv.DictReader(handle) if r["train/loss"]]


# -- MLflow ---------------------------------------------------------------------------


def mlflow_run(tracking_uri: str, experiment: str = "trainforge") -> tuple[Any, Any]:
    """A client on the MLflow store, and the only run of ``experiment`` in it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.slow
def test_mlflow_run_is_read_back_by_the_mlflow_client(tmp_path, digits_config):
    config = digits_config(tmp_path, "loggers.mlflow.enabled=true")
    results = Trainer(training_config=config).train()

    store = results.run_dir / "mlflow"
    client, run = mlflow_run(f"sqlite:///{store / 'mlflow.db'}")
    assert run.info.run_name == results.run_id
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((store / "artifacts").resolve().as_uri())

    train = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in train] == TRAIN_STEPS
    assert [m.value for m in train] == pytest.approx(csv_losses(results.run_dir))
    val = client.get_metric_history(run.info.run_id, "val/loss")
    assert [m.step for m in val] == VAL_STEPS
    assert val[-1].value == pytest.approx(results.metrics_summary["val/loss"].iloc[-1])

    params = run.data.params  # the resolved config, flattened with "/"
    assert params["task/name"] == "digits"
    assert params["trainer/engine"] == "lightning"
    assert float(params["optim/lr"]) == config.optim.lr
    assert params["trainer/max_epochs"] == "2"


def test_logged_config_hides_store_passwords(tmp_path, digits_config):
    config = digits_config(
        tmp_path, "tracking.database=postgresql+psycopg://trainer:s3cret@db.example:5432/runs"
    )
    (logger,) = [
        item for item in build_loggers(config, "run-000001") if type(item).__name__ == "CSVWriter"
    ]
    logger.finalize("success")
    logged = (Path(logger.log_dir) / "hparams.yaml").read_text()
    assert "postgresql+psycopg://trainer:***@db.example:5432/runs" in logged
    assert "s3cret" not in logged


# -- W&B offline -----------------------------------------------------------------------


def wandb_records(path: Path) -> list[Any]:
    """Every record of a W&B run file (``run-<id>.wandb``), as W&B's own protobuf messages.

    The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1,
    version 0), then 32 KiB blocks of chunks, each with a CRC-32 (seeded with the chunk
    type), a length and a type (full, first, middle, last); checked here chunk by chunk.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    block, position, pending, payloads = 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"bad chunk at {position}"
        position += 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
        else:
            raise AssertionError(f"unknown chunk type {kind} at {position}")
    return [wandb_internal_pb2.Record.FromString(p) for p in payloads]


def wandb_history(records: list[Any], name: str) -> list[float]:
    """The values of metric ``name`` in the history records, in order."""
    values = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                if (item.key or "/".join(item.nested_key)) == name:
                    values.append(json.loads(item.value_json))
    return values


def wandb_run_file(run_dir: Path) -> Path:
    """The one offline run file of the run's W&B logger, once W&B has closed it."""
    import wandb

    # run.finish() returns before wandb-core closes the run's log (it does so
    # asynchronously); teardown waits for the service process to exit.
    wandb.teardown()
    (path,) = (run_dir / "wandb" / "wandb").glob("offline-run-*/run-*.wandb")
    assert path.stat().st_size > 0
    return path


def only(records: list[Any], kind: str) -> Any:
    """The single record of type ``kind``."""
    (found,) = [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]
    return found


@pytest.mark.slow
def test_wandb_offline_run_is_complete_when_training_returns(tmp_path, monkeypatch, digits_config):
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline comes from the config default
    config = digits_config(tmp_path, "loggers.wandb.enabled=true")
    results = Trainer(training_config=config).train()

    assert wandb.run is None  # finished: the next run in this process starts its own
    records = wandb_records(wandb_run_file(results.run_dir))
    assert only(records, "run").display_name == results.run_id
    assert only(records, "exit").exit_code == 0
    assert wandb_history(records, "train/loss") == pytest.approx(csv_losses(results.run_dir))
    assert len(wandb_history(records, "val/loss")) == 2
    logged = {u.key: json.loads(u.value_json) for u in only(records, "config").update}
    assert logged["task"]["name"] == "digits"
    assert logged["optim"]["lr"] == config.optim.lr


def test_wandb_runs_of_different_output_folders_get_distinct_ids(tmp_path):
    ids = []
    for folder in ("a", "b"):  # both runs are run-000001 in their own output folder
        logger = create_logger("wandb", save_dir=tmp_path / folder, run_id="run-000001")
        logger.log_metrics({"train/loss": 1.0}, step=1)
        ids.append(logger.experiment.id)
        logger.finalize("success")
        assert only(wandb_records(wandb_run_file(tmp_path / folder / "run-000001")), "exit")
    assert ids[0] != ids[1]


def test_wandb_failed_run_finishes_with_a_nonzero_exit_code(tmp_path):
    logger = create_logger("wandb", save_dir=tmp_path, run_id="run-000001")
    logger.log_metrics({"train/loss": 1.0}, step=1)
    logger.finalize("failed")
    logger.finalize("failed")  # Lightning may finalize twice on errors: harmless
    records = wandb_records(wandb_run_file(tmp_path / "run-000001"))
    assert only(records, "exit").exit_code == 1


# -- Comet offline ---------------------------------------------------------------------


def comet_messages(archive: Path, kind: str) -> list[dict[str, Any]]:
    """The payloads of the messages of type ``kind`` in a Comet offline archive."""
    with zipfile.ZipFile(archive) as bundle:
        lines = bundle.read("messages.json").decode().splitlines()
    return [m["payload"] for m in map(json.loads, lines) if m["type"] == kind]


def comet_metrics(archive: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) of every message logging metric ``name`` in a Comet offline archive."""
    return [
        (p["metric"]["step"], p["metric"]["metricValue"])
        for p in comet_messages(archive, "metric_msg")
        if p["metric"]["metricName"] == name
    ]


def comet_archive(run_dir: Path) -> Path:
    """The one offline archive of the run's Comet logger."""
    (archive,) = (run_dir / "comet").glob("*.zip")
    return archive


@pytest.mark.slow
def test_comet_offline_archive_is_written_when_training_returns(
    tmp_path, monkeypatch, digits_config
):
    monkeypatch.delenv("COMET_START_ONLINE", raising=False)
    # the Comet logger sets this for the whole process (as Lightning does): restore it
    monkeypatch.delenv("COMET_DISABLE_AUTO_LOGGING", raising=False)
    results = Trainer(training_config=digits_config(tmp_path, "loggers.comet.enabled=true")).train()

    archive = comet_archive(results.run_dir)  # written by ending the experiment
    train = comet_metrics(archive, "train/loss")  # once each: not again through TensorBoard
    assert [step for step, _ in train] == TRAIN_STEPS
    assert [value for _, value in train] == pytest.approx(csv_losses(results.run_dir))
    assert [step for step, _ in comet_metrics(archive, "val/loss")] == VAL_STEPS
    with zipfile.ZipFile(archive) as bundle:
        assert json.loads(bundle.read("experiment.json"))["project_name"] == "trainforge"
    others = {p["key"]: p["value"] for p in comet_messages(archive, "log_other")}
    assert others["Name"] == results.run_id
    # the config, flattened with "|" (a list value is one "params" message)
    params = {
        m["paramName"]: m["paramValue"]
        for m in (p.get("param") or p["params"] for p in comet_messages(archive, "parameter_msg"))
    }
    assert params["task|name"] == "digits"
    assert "COMET_START_ONLINE" not in os.environ  # no process-wide switch left behind


# -- all at once ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_all_loggers_at_once_each_write_their_files(tmp_path, monkeypatch, engine, digits_config):
    import wandb

    monkeypatch.delenv("COMET_DISABLE_AUTO_LOGGING", raising=False)  # restored afterwards
    shared = f"sqlite:///{tmp_path / 'mlflow-shared.db'}"
    config = digits_config(
        tmp_path,
        f"trainer.engine={engine}",
        "loggers.wandb.enabled=true",
        "loggers.mlflow.enabled=true",
        f"loggers.mlflow.tracking_uri={shared}",
        "loggers.mlflow.experiment_name=digits",
        "loggers.comet.enabled=true",
    )
    assert config.loggers.csv.enabled and config.loggers.tensorboard.enabled
    results = Trainer(training_config=config).train()
    run_dir = results.run_dir
    losses = csv_losses(run_dir)
    assert losses
    if engine == "lightning":
        assert len(losses) == len(TRAIN_STEPS)

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(losses)

    client, run = mlflow_run(shared, "digits")
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer/engine"] == engine
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.value for m in history) == pytest.approx(sorted(losses))
    assert not (run_dir / "mlflow" / "mlflow.db").exists()  # the configured store only

    assert wandb.run is None
    records = wandb_records(wandb_run_file(run_dir))
    assert only(records, "exit").exit_code == 0
    assert wandb_history(records, "train/loss") == pytest.approx(losses)
    train = comet_metrics(comet_archive(run_dir), "train/loss")
    assert [value for _, value in train] == pytest.approx(losses)


# -- environment overlays -------------------------------------------------------------


@pytest.mark.slow
def test_environment_overlay_enables_a_logger_without_code_changes(tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        f"run:\n  output_dir: {tmp_path / 'outputs'}\n"
        "environments:\n"
        "  prod:\n"
        "    loggers:\n"
        "      mlflow:\n"
        "        enabled: true\n"
        "        experiment_name: digits-prod\n"
    )
    local = load_config(config_file, template="digits", environ={})
    assert [type(lg).__name__ for lg in build_loggers(local, "run-000001")] == [
        "CSVWriter",
        "TensorBoardWriter",
    ]

    by_option = load_config(config_file, template="digits", env="prod", environ={})
    by_variable = load_config(config_file, template="digits", environ={"TRAINFORGE_ENV": "prod"})
    for run_id, prod in (("run-000002", by_option), ("run-000003", by_variable)):
        assert prod.provenance_of("loggers.mlflow.enabled").render() == "(env:prod)"
        loggers = build_loggers(prod, run_id)
        assert [type(lg).__name__ for lg in loggers] == [
            "CSVWriter",
            "TensorBoardWriter",
            "MLFlowLogger",
        ]
        for logger in loggers:
            logger.finalize("success")
        store = tmp_path / "outputs" / run_id / "mlflow" / "mlflow.db"
        _, run = mlflow_run(f"sqlite:///{store}", "digits-prod")
        assert run.info.run_name == run_id and run.data.params["task/name"] == "digits"


# -- a logger whose package is missing, through the CLI ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lightning", "plain"])
def test_cli_train_without_wandb_names_the_extra_and_exits_1(tmp_path, engine):
    # "not installed", simulated without uninstalling: Python's import system treats
    # sys.modules[name] = None as a module that cannot be imported
    script = (
        "import sys\n"
        "sys.modules['wandb'] = None\n"
        "from trainforge.cli._app import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = [
        "train",
        f"run.output_dir={tmp_path / 'outputs'}",
        f"tracking.database=sqlite:///{tmp_path / 't.db'}",
        f"trainer.engine={engine}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false",
        "loggers.wandb.enabled=true",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    assert "The W&B logger needs the package 'wandb', which is not installed" in proc.stderr
    assert "pip install 'trainforge[wandb]'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the run that never trained is recorded as failed, not completed
    db = ExperimentDB(f"sqlite:///{tmp_path / 't.db'}")
    (run,) = db.search_runs()
    assert run["status"] == "failed"
    db.close()
