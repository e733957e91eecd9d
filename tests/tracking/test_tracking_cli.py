"""``trainforge runs`` and ``trainforge registry`` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trainforge.cli import main
from trainforge.tracking import ExperimentDB, ModelRegistry


@pytest.fixture
def db_file(tmp_path):
    """A SQLite store with two runs and two registered versions of one model."""
    path = str(tmp_path / "cli.db")
    db = ExperimentDB(path)
    for name, loss in (("base", 0.5), ("tuned", 0.3)):
        run_id = db.log_run(name, {"optim": {"lr": 0.1}}, experiment="cli", tags=["baseline"])
        for step in range(3):
            db.log_metric(run_id, "val/loss", loss + 0.1 * (2 - step), step=step)
        db.update_run_status(run_id, "completed")
    registry = ModelRegistry(db.store)
    first = registry.register_model("mlp", checkpoint_path="a", training_run_id=1)
    registry.register_model("mlp", checkpoint_path="b", parent_model_id=first)
    db.close()
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_list_and_show(db_file, capsys):
    code, out, _ = _run(capsys, "runs", "list", "--db", db_file)
    assert code == 0 and "tuned" in out and "base" in out
    code, out, _ = _run(capsys, "runs", "show", "2", "--db", db_file, "--json")
    assert code == 0
    assert json.loads(out)["metrics"]["val/loss"]["last"] == 0.3


def test_runs_search_and_compare_json(db_file, capsys):
    code, out, _ = _run(
        capsys, "runs", "search", "metrics.val/loss < 0.4", "--db", db_file, "--json"
    )
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["tuned"]
    code, out, _ = _run(capsys, "runs", "compare", "1", "2", "--db", db_file, "--json")
    assert code == 0
    assert [r["metrics.val/loss"] for r in json.loads(out)] == [0.5, 0.3]


def test_runs_list_shows_the_monitored_metric_first_and_chosen_metrics(tmp_path, capsys):
    """Alphabetical ``grad/*`` keys never crowd out the metric the run monitors."""
    path = str(tmp_path / "monitor.db")
    db = ExperimentDB(path)
    config = {"checkpoint": {"monitor": "val/acc"}, "optim": {"lr": 0.1}}
    run_id = db.log_run("watched", config, experiment="cli")
    for key in ("grad/a/norm", "grad/b/norm", "grad/c/norm", "grad/d/norm", "lr", "val/acc"):
        db.log_metric(run_id, key, 0.75, step=1)
    db.log_metric(run_id, "train/loss", 0.5, step=1)
    db.close()
    code, out, _ = _run(capsys, "runs", "list", "--db", path)
    assert code == 0 and "val/acc=0.75" in out and "train/loss=0.5" in out
    assert "grad/a/norm" not in out
    code, out, _ = _run(capsys, "runs", "list", "--db", path, "-m", "lr", "-m", "val/f1")
    assert code == 0 and "lr=0.75" in out and "val/f1=-" in out and "val/acc" not in out
    code, out, _ = _run(capsys, "runs", "search", "metrics.lr > 0", "--db", path, "-m", "lr")
    assert code == 0 and "lr=0.75" in out


def test_runs_compare_shows_metrics_first_and_only_differing_params(tmp_path, capsys):
    path = str(tmp_path / "compare.db")
    db = ExperimentDB(path)
    shared = {f"k{i}": i for i in range(30)}
    for lr, loss in ((0.1, 0.5), (0.2, 0.3)):
        run_id = db.log_run(f"lr{lr}", {"optim": {"lr": lr}, "shared": shared}, experiment="c")
        db.log_metric(run_id, "val/loss", loss, step=1)
    db.close()
    code, out, _ = _run(capsys, "runs", "compare", "1", "2", "--db", path)
    assert code == 0 and "params.optim.lr" in out and "params.shared.k7" not in out
    assert "30 params identical in every run are hidden" in out
    assert out.index("metrics.val/loss") < out.index("params.optim.lr")
    code, out, _ = _run(capsys, "runs", "compare", "1", "2", "--db", path, "--all")
    assert code == 0 and "params.shared.k7" in out and "hidden" not in out


def test_runs_default_db_comes_from_env(db_file, capsys, monkeypatch):
    monkeypatch.setenv("TRAINFORGE_DB", db_file)
    code, out, _ = _run(capsys, "runs", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_runs_plot_writes_png(db_file, tmp_path, capsys):
    png = tmp_path / "plots" / "loss.png"
    code, _, err = _run(
        capsys, "runs", "plot", "1", "2", "-m", "val/loss", "-o", str(png), "--db", db_file
    )
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_registry_workflow(db_file, tmp_path, capsys):
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    code, out, _ = _run(
        capsys,
        "registry",
        "register",
        "mlp",
        "--checkpoint",
        str(tmp_path / "model.onnx"),
        "-m",
        "val_loss=0.2",
        "--db",
        db_file,
        "--json",
    )
    assert code == 0 and json.loads(out)["version"] == 3
    assert _run(capsys, "registry", "promote", "3", "production", "--db", db_file)[0] == 0
    code, out, _ = _run(
        capsys, "registry", "list", "--tag", "production", "--db", db_file, "--json"
    )
    assert [m["id"] for m in json.loads(out)] == [3]
    code, out, _ = _run(capsys, "registry", "compare", "1", "3", "--db", db_file, "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = _run(capsys, "registry", "lineage", "2", "--db", db_file)
    assert code == 0 and "lineage of model 2" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "show", "99"], "no run with id 99"),
        (["runs", "compare", "1", "77"], "no run with id 77"),
        (["runs", "search", "metrics.val/loss <"], "position 18"),
        (["registry", "promote", "1", "prodution"], "did you mean 'production'"),
        (["registry", "lineage", "42"], "no registered model with id 42"),
        (["registry", "register", "m", "--checkpoint", "c", "-m", "loss"], "KEY=NUMBER"),
    ],
)
def test_user_errors_exit_1_with_a_message(db_file, capsys, argv, message):
    code, _, err = _run(capsys, *argv, "--db", db_file)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/none", "127.0.0.1:1/none"),
        ("sqlite:///file:{dir}/missing.db?mode=ro&uri=true", "missing.db"),
    ],
)
def test_unavailable_store_exits_1(tmp_path, capsys, db, message):
    code, _, err = _run(capsys, "runs", "list", "--db", db.format(dir=tmp_path))
    assert code == 1 and message in err


def test_read_only_store_exits_1(db_file, capsys):
    url = f"sqlite:///file:{db_file}?mode=ro&uri=true"
    code, _, err = _run(
        capsys, "registry", "register", "m", "--checkpoint", "s3://bucket/c", "--db", url
    )
    assert code == 1 and "read-only" in err and db_file in err


def test_cli_modules_import_no_heavy_packages():
    code = (
        "import sys, trainforge.cli._runs_cmd, trainforge.cli._registry_cmd\n"
        "heavy = {'sqlalchemy', 'pandas', 'matplotlib', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_store_chosen_by_config_file_and_stale_runs_marked(tmp_path, monkeypatch, capsys):
    """``--config`` picks tracking.database; ``runs list`` marks silent runs stale."""
    import json

    from trainforge.cli import main
    from trainforge.tracking import ExperimentDB

    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    url = f"sqlite:///{tmp_path / 'chosen.db'}"
    (tmp_path / "train.yaml").write_text(f"tracking:\n  database: {url}\n")
    run_id = ExperimentDB(url).log_run("silent", {"optim": {"lr": 0.1}})
    code = main(
        ["runs", "--config", str(tmp_path / "train.yaml"), "list", "--stale-after", "0", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0
    (run,) = json.loads(out)
    assert run["run_id"] == run_id
    assert run["status"] == "stale"
