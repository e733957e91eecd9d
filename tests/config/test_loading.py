"""Layered loading: every layer, in order, with the provenance of each value."""

from pathlib import Path

import pytest

from trainforge.config import TrainingConfig, load_config, split_cli_args


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_only():
    cfg = load_config(environ={})
    assert cfg.optim.lr == TrainingConfig().optim.lr
    assert cfg.provenance_of("optim.lr").render() == "(default)"


def test_every_layer_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "base.yaml", "optim:\n  lr: 0.5\n  weight_decay: 0.2\ndata:\n  num_workers: 1\n"
    )
    write(
        tmp_path / "train.yaml",
        "defaults: [base.yaml]\n"
        "optim:\n  lr: 0.4\n"
        "trainer:\n  max_epochs: 3\n  log_every_n_steps: 7\n"
        "environments:\n  dev:\n    trainer:\n      max_epochs: 1\n",
    )
    cfg = load_config(
        "train.yaml",
        template="digits",
        preset="small",
        env="dev",
        environ={"TRAINFORGE__DATA__SHUFFLE": "false", "TRAINFORGE__OPTIM__LR": "0.3"},
        cli=["optim.lr=0.2", "run.seed=5"],
        overrides={"run.seed": 6},
    )
    expected = {
        "task.input_dim": (64, "template:digits"),
        "data.batch_size": (32, "preset:small"),
        "optim.weight_decay": (0.2, "config:base.yaml:optim"),
        "data.num_workers": (1, "config:base.yaml:data"),
        "trainer.log_every_n_steps": (7, "config:train.yaml:trainer"),
        "trainer.max_epochs": (1, "env:dev"),
        "data.shuffle": (False, "envvar:TRAINFORGE__DATA__SHUFFLE"),
        "optim.lr": (0.2, "cli"),
        "run.seed": (6, "override"),
    }
    for key, (value, source) in expected.items():
        section, leaf = key.split(".")
        assert getattr(getattr(cfg, section), leaf) == value, key
        assert cfg.provenance_of(key).source == source, key


def test_later_files_win(tmp_path):
    a = write(tmp_path / "a.yaml", "optim:\n  lr: 0.1\n")
    b = write(tmp_path / "b.yaml", "optim:\n  lr: 0.2\n")
    assert load_config(a, b, environ={}).optim.lr == 0.2
    assert load_config(b, a, environ={}).optim.lr == 0.1


def test_environment_from_sibling_file_and_env_variable(tmp_path):
    cfg_file = write(tmp_path / "train.yaml", "trainer:\n  max_epochs: 8\n")
    write(tmp_path / "train.prod.yaml", "trainer:\n  max_epochs: 80\n")
    cfg = load_config(cfg_file, environ={"TRAINFORGE_ENV": "prod"})
    assert cfg.trainer.max_epochs == 80
    assert cfg.provenance_of("trainer.max_epochs").render() == "(env:prod)"


def test_interpolation_resolves_and_keeps_provenance_of_the_setter(tmp_path):
    cfg_file = write(tmp_path / "t.yaml", "run:\n  output_dir: /data/runs\n")
    cfg = load_config(cfg_file, environ={})
    assert cfg.loggers.csv.save_dir == "/data/runs"
    assert cfg.callbacks.profiler.trace_dir == "/data/runs/profiler"
    assert cfg.provenance_of("loggers.csv.save_dir").source == "default"


def test_free_form_kwargs_accept_new_keys():
    cfg = load_config(cli=["model.kwargs.hidden=128", "data.kwargs.root=/tmp/x"], environ={})
    assert cfg.model.kwargs == {"hidden": 128}
    assert cfg.provenance_of("model.kwargs.hidden").source == "cli"


def test_derived_value_is_tagged():
    cfg = load_config(cli=["data.batch_size=12"], environ={})
    assert cfg.data.val_batch_size == 12
    assert cfg.provenance_of("data.val_batch_size").render() == "(default; derived)"


@pytest.mark.parametrize(
    ("words", "files", "overrides"),
    [
        (["a.yaml", "optim.lr=1"], ["a.yaml"], ["optim.lr=1"]),
        (["--optim.lr", "3e-4"], [], ["optim.lr=3e-4"]),
        (["--optim.lr=3e-4", "x.yaml"], ["x.yaml"], ["optim.lr=3e-4"]),
    ],
)
def test_hydra_and_lightning_cli_styles(words, files, overrides):
    assert split_cli_args(words) == (files, overrides)


def test_lightning_style_value_is_parsed():
    cfg = load_config(cli=["--optim.lr", "3e-4", "--trainer.max_epochs=2"], environ={})
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.trainer.max_epochs == 2


def test_interpolation_across_sections_and_resolvers(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_TEST_NOTES", "from the environment")
    cfg_file = write(
        tmp_path / "t.yaml",
        "data:\n  batch_size: 48\n"
        "model:\n  kwargs:\n    width: ${data.batch_size}\n    name: net-${data.batch_size}\n"
        "run:\n  notes: ${oc.env:TF_TEST_NOTES}\n",
    )
    cfg = load_config(cfg_file, environ={})
    assert cfg.model.kwargs == {"width": 48, "name": "net-48"}
    assert cfg.run.notes == "from the environment"
