"""``trainforge export`` on a real run: register, and every bad input exits 1 clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainforge.cli import main
from trainforge.config import load_config
from trainforge.production import read_bundle, verify_bundle
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A short tracked digits run (plain driver): its folder; the store is next to it."""
    root = tmp_path_factory.mktemp("export-cli")
    config = load_config(
        template="digits",
        cli=[
            "trainer.engine=plain",
            f"run.output_dir={root / 'outputs'}",
            f"tracking.database=sqlite:///{root / 't.db'}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.enable_progress_bar=false",
            "loggers.tensorboard.enabled=false",
            "model.kwargs.hidden_dims=[16]",
        ],
        environ={},
    )
    return Trainer(training_config=config, log_config=False).train().run_dir


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_by_run_id_registers_the_bundle(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table on one line, whatever the terminal
    db = str(trained.parent.parent / "t.db")
    code, out, err = _run(
        capsys,
        "export",
        "1",
        "--runs-dir",
        str(trained.parent),
        "--format",
        "onnx,pytorch",
        "--output",
        str(tmp_path / "bundle"),
        "--register",
        "digits-mlp",
        "--db",
        db,
    )
    assert code == 0, err
    assert "registered digits-mlp as model 1" in out
    bundle = read_bundle(tmp_path / "bundle")
    assert bundle.shipped == ["onnx", "pytorch"] and verify_bundle(bundle.path) == []
    best = (trained / "checkpoints" / "best").read_text().strip()
    assert bundle.manifest["source"]["checkpoint"].endswith(best)

    code, out, _ = _run(capsys, "registry", "list", "--db", db, "--json")
    (model,) = json.loads(out)
    assert model["name"] == "digits-mlp" and model["export_formats"] == ["onnx", "pytorch"]
    assert model["checkpoint_path"] == str((tmp_path / "bundle").resolve())
    assert model["training_run_id"] == 1 and model["model_size_mb"] > 0
    assert model["metadata"]["checks"]["onnx"]["max_abs_diff"] < 1e-4
    code, out, _ = _run(capsys, "registry", "list", "--db", db)
    assert "digits-mlp" in out and "onnx,pytorch" in out


def test_an_existing_output_is_refused_unless_overwrite(trained, tmp_path, capsys):
    target = tmp_path / "bundle"
    target.mkdir()
    args = ["export", str(trained), "--output", str(target)]  # formats: export.formats
    code, _, err = _run(capsys, *args)
    assert code == 1 and "already exists" in err and "--overwrite" in err
    assert "Traceback" not in err and list(target.iterdir()) == []
    code, out, err = _run(capsys, *args, "--overwrite", "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["path"] == str(target) and manifest["formats"]["pytorch"]["status"] == "ok"
    assert list(manifest["formats"]) == ["pytorch"]  # the run's export.formats default
    assert verify_bundle(target) == []


def test_unknown_format_gets_a_suggestion(trained, capsys):
    code, _, err = _run(capsys, "export", str(trained), "--format", "onnx,torchscipt")
    assert code == 1 and "unknown export format 'torchscipt'" in err
    assert "did you mean 'torchscript'" in err and "Traceback" not in err


def test_a_checkpoint_that_fails_verification_is_not_exported(trained, tmp_path, capsys):
    best = trained / "checkpoints" / (trained / "checkpoints" / "best").read_text().strip()
    copy = tmp_path / "checkpoints" / best.name
    shutil.copytree(best, copy)
    payload = next(p for p in copy.iterdir() if p.name.startswith("state"))
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    code, _, err = _run(capsys, "export", str(copy), "--output", str(tmp_path / "b"))
    assert code == 1 and "sha256" in err and payload.name in err
    assert not (tmp_path / "b").exists() and "Traceback" not in err


def test_a_run_without_checkpoints_or_an_unknown_run_is_refused(trained, tmp_path, capsys):
    empty = tmp_path / "run-000009"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(trained / "config.yaml", empty / "config.yaml")
    code, _, err = _run(capsys, "export", str(empty))
    assert code == 1 and "has no checkpoints" in err and "Traceback" not in err
    code, _, err = _run(capsys, "export", "42", "--runs-dir", str(tmp_path))
    assert code == 1 and "'42' is neither a checkpoint, a run folder, nor a run" in err


def test_a_retried_export_job_replaces_its_own_bundle_and_keeps_its_version(
    trained, tmp_path, capsys, monkeypatch
):
    # as a worker runs it: TRAINFORGE_JOB_ID names the job, each attempt the same command
    db = str(trained.parent.parent / "t.db")
    target = tmp_path / "bundle"
    args = ["export", str(trained), "--output", str(target), "--json"]
    monkeypatch.setenv("TRAINFORGE_JOB_ID", "7")
    code, out, err = _run(capsys, *args, "--register", "retried-mlp", "--db", db)
    assert code == 0, err
    first = json.loads(out)
    assert first["source"]["job_id"] == 7
    # attempt 2 (the first was reported lost): its own bundle is replaced, the version kept
    code, out, err = _run(capsys, *args, "--register", "retried-mlp", "--db", db)
    assert code == 0, err
    assert json.loads(out)["model_id"] == first["model_id"] and verify_bundle(target) == []
    code, out, _ = _run(capsys, "registry", "list", "--db", db, "--json")
    (model,) = [m for m in json.loads(out) if m["name"] == "retried-mlp"]
    assert model["version"] == 1 and model["metadata"]["job_id"] == 7
    # another job's, or a hand-made export's, bundle is not this job's to replace
    monkeypatch.setenv("TRAINFORGE_JOB_ID", "8")
    code, _, err = _run(capsys, *args)
    assert code == 1 and "already exists" in err and "Traceback" not in err
    monkeypatch.delenv("TRAINFORGE_JOB_ID")
    code, _, err = _run(capsys, *args)
    assert code == 1 and "already exists" in err
    assert read_bundle(target).manifest["source"]["job_id"] == 7
    # a bundle exported by hand records no job, and a job cannot claim it either
    code, out, err = _run(capsys, *args, "--overwrite")
    assert code == 0 and json.loads(out)["source"]["job_id"] is None
    monkeypatch.setenv("TRAINFORGE_JOB_ID", "7")
    code, _, err = _run(capsys, *args)
    assert code == 1 and "already exists" in err


def test_an_output_that_cannot_be_written_is_a_clear_error(trained, tmp_path, capsys):
    (tmp_path / "a-file").write_text("a file where a folder should be")
    target = tmp_path / "a-file" / "bundle"
    code, _, err = _run(capsys, "export", str(trained), "--output", str(target))
    assert code == 1 and f"cannot write the bundle folder {target}" in err
    assert "--output" in err and "Traceback" not in err
