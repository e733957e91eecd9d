"""``trainforge config ...`` end to end: output, JSON, exit codes, no tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.cli import main

TRAIN_YAML = """\
optim:
  lr: 0.01
  weight_decay: 0.05
trainer:
  max_epochs: 3
environments:
  dev:
    trainer:
      max_epochs: 1
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "train.yaml").write_text(TRAIN_YAML)
    return tmp_path


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_table_with_provenance(project, capsys):
    code, out, _ = run(
        capsys, "config", "show", "train.yaml", "--preset", "small", "optim.lr=0.1", "--env", "dev"
    )
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert "0.1" in rows["optim.lr"] and "(cli)" in rows["optim.lr"]
    assert "(env:dev)" in rows["trainer.max_epochs"]
    assert "(config:train.yaml:optim)" in rows["optim.weight_decay"]
    assert "(preset:small)" in rows["data.batch_size"]
    assert "optim.betas" not in rows  # untouched default hidden without --all


def test_show_all_and_json(project, capsys):
    code, out, _ = run(capsys, "config", "show", "train.yaml", "--all", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["config"]["optim"]["lr"] == 0.01
    assert data["provenance"]["optim.betas"]["source"] == "default"
    assert data["provenance"]["optim.lr"]["source"] == "config:train.yaml:optim"
    assert len(data["config_hash"]) == 64


def test_lightning_style_override(project, capsys):
    code, out, _ = run(capsys, "config", "show", "--json", "--optim.lr", "0.3")
    assert code == 0
    assert json.loads(out)["config"]["optim"]["lr"] == 0.3


def test_validate_legend_templates(project, capsys):
    assert run(capsys, "config", "validate", "train.yaml")[1].startswith("configuration is valid")
    code, out, _ = run(capsys, "config", "legend")
    assert code == 0 and "derived" in out and "runtime" in out
    code, out, _ = run(capsys, "config", "templates", "--json")
    assert code == 0 and "digits" in json.loads(out)


def test_diff(project, capsys):
    Path("b.yaml").write_text("optim:\n  lr: 0.5\nmodel:\n  name: pkg.mod:Net\n")
    code, out, _ = run(capsys, "config", "diff", "train.yaml", "b.yaml", "--json")
    assert code == 0
    changes = {c["key"]: c for c in json.loads(out)}
    assert changes["optim.lr"]["old"] == 0.01 and changes["optim.lr"]["new"] == 0.5
    assert changes["model.name"]["severity"] == "breaking"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "show", "optim.lrr=1"], "did you mean optim.lr?"),
        (["config", "show", "missing.yaml"], "config file not found: missing.yaml"),
        (["config", "show", "optim.lr"], "is not of the form key=value"),
        (["config", "validate", "--preset", "huge"], "valid presets: small, medium, large"),
        (["config", "show", "--template", "nope"], "valid templates: ball_heatmap, digits"),
        (["config", "show", "train.yaml", "--env", "prod"], "valid environments: dev"),
        (["config", "show", "trainer.max_epochs=-3"], "trainer.max_epochs"),
    ],
)
def test_bad_input_exits_1_with_message(project, capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err + out


def test_usage_error_exits_2(project, capsys):
    code, _, _ = run(capsys, "config", "diff", "only-one.yaml")
    assert code == 2


def test_installed_command_no_traceback_and_version(project):
    bad = project / "bad.yaml"
    bad.write_text("optim:\n  lr: [1,\n")
    exe = [sys.executable, "-m", "trainforge.cli", "config", "show", str(bad)]
    proc = subprocess.run(exe, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "malformed YAML" in proc.stderr and "line 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    version = subprocess.run(
        [sys.executable, "-m", "trainforge.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("trainforge ")
