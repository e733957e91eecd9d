"""Every kind of bad input gets a clear error naming what, where and how to fix it."""

from pathlib import Path

import pytest

from trainforge.config import TrainingConfig, load_config
from trainforge.errors import ConfigError, ConfigFileError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_key_names_path_file_and_suggestion(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "train.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config("train.yaml", environ={})
    text = str(info.value)
    assert "optim.lrr: unknown key; did you mean optim.lr?" in text
    assert "(set by config:train.yaml:optim)" in text


def test_unknown_section_is_reported():
    with pytest.raises(ConfigError, match=r"optm\.lr: unknown key; did you mean optim\.lr\?"):
        load_config(cli=["optm.lr=1"], environ={})


@pytest.mark.parametrize("argv", [["--config", "train.yaml"], ["--config=train.yaml"]])
def test_a_config_file_flag_says_how_files_are_given(argv, capsys):
    from trainforge.cli import main

    assert main(["train", *argv, "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "config: unknown key; a config file is given by its path alone" in err
    assert "trainforge train path/to/file.yaml" in err and "Traceback" not in err


def test_wrong_type_and_range_name_key_value_and_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "train.yaml", "trainer:\n  max_epochs: many\n")
    with pytest.raises(ConfigError) as info:
        load_config("train.yaml", cli=["optim.lr=-1"], environ={})
    text = str(info.value)
    assert "2 problems" in text
    assert "trainer.max_epochs" in text and "'many'" in text
    assert "(set by config:train.yaml:trainer)" in text
    assert "optim.lr: Input should be greater than 0 (got -1) (set by cli)" in text


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(cli=["optim.lrr=1", "data.batch_size=0", "optim.name=lion"], environ={})
    keys = {issue.key for issue in info.value.issues}
    assert keys == {"optim.lrr", "data.batch_size", "optim.name"}


def test_malformed_yaml_gives_file_line_and_column(tmp_path):
    bad = write(tmp_path / "bad.yaml", "optim:\n  lr: 0.1\n  betas: [0.9, 0.99\nrun:\n  seed: 1\n")
    with pytest.raises(ConfigFileError) as info:
        load_config(bad, environ={})
    assert f"malformed YAML in {bad} at line 4, column " in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigFileError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_dotlist_item_without_equals():
    with pytest.raises(ConfigError, match="'optim.lr' is not of the form key=value"):
        load_config(cli=["optim.lr"], environ={})


def test_interpolation_to_a_missing_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "t.yaml", "run:\n  notes: ${run.missing_key}\n")
    with pytest.raises(ConfigError) as info:
        load_config("t.yaml", environ={})
    text = str(info.value)
    assert "run.notes: Interpolation key 'run.missing_key' not found" in text
    assert "config:t.yaml:run" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "tiny"}, "unknown preset 'tiny'.*valid presets: small, medium, large"),
        ({"template": "digitz"}, "unknown template 'digitz'; did you mean 'digits'\\?.*digits"),
        ({"env": "prod"}, "unknown environment 'prod'.*valid environments"),
    ],
)
def test_unknown_preset_template_environment_list_valid_names(kwargs, message):
    with pytest.raises(ConfigError, match=f"(?s){message}"):
        load_config(environ={}, **kwargs)


def test_unknown_environment_lists_those_defined(tmp_path):
    cfg = write(tmp_path / "t.yaml", "environments:\n  dev: {}\n  test: {}\n")
    with pytest.raises(ConfigError, match="valid environments: dev, test"):
        load_config(cfg, env="staging", environ={})


def test_include_cycle_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    with pytest.raises(ConfigFileError, match=r"include cycle: a.yaml -> b.yaml -> a.yaml"):
        load_config("a.yaml", environ={})


@pytest.mark.parametrize("spelling", ["include: [base.yaml]", "extends: base.yaml"])
def test_an_include_spelled_as_elsewhere_says_how_files_are_included(tmp_path, spelling):
    write(tmp_path / "base.yaml", "optim:\n  lr: 0.5\n")
    cfg = write(tmp_path / "a.yaml", spelling + "\n")
    key = spelling.split(":")[0]
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert f"{key}: unknown key; a config file includes others with defaults: [" in str(info.value)


def test_missing_include(tmp_path):
    cfg = write(tmp_path / "a.yaml", "defaults: [nowhere.yaml]\n")
    with pytest.raises(ConfigFileError, match="'nowhere.yaml' included by .*a.yaml"):
        load_config(cfg, environ={})


def test_cross_field_rule_fails_before_training():
    with pytest.raises(ConfigError, match="conflicts with optimization=manual"):
        load_config(
            cli=["trainer.optimization=manual", "trainer.accumulate_grad_batches=4"], environ={}
        )


def test_update_rejects_unknown_key_and_invalid_value():
    cfg = TrainingConfig()
    with pytest.raises(ConfigError, match="did you mean optim.lr"):
        cfg.update("optim.lrr", 0.1)
    with pytest.raises(ConfigError, match="optim.lr"):
        cfg.update("optim.lr", -5)
    assert cfg.optim.lr == TrainingConfig().optim.lr


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    # nine levels of "a list of nine aliases of the level below": 9**9 values in 10 lines
    monkeypatch.chdir(tmp_path)
    levels = ["  l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        levels.append(f"  l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    write(tmp_path / "bomb.yaml", "model:\n kwargs:\n" + "\n".join(" " + line for line in levels))
    with pytest.raises(ConfigFileError) as info:
        load_config("bomb.yaml", environ={})
    text = info.value.user_message()
    assert "bomb.yaml expands to" in text and "YAML aliases" in text and "anchors" in text
    # anchors that only name a value a few times are fine
    write(tmp_path / "dry.yaml", "model:\n  kwargs:\n    a: &w [1, 2]\n    b: *w\n")
    assert load_config("dry.yaml", environ={}).model.kwargs["b"] == [1, 2]


def test_a_key_given_twice_in_one_file_is_an_error_with_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "twice.yaml", "optim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigFileError, match=r"twice\.yaml at line 3.*duplicate key lr"):
        load_config("twice.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # nesting deeper than Python's merge could follow (it was a RecursionError)
        ("x: " + "[" * 500 + "1" + "]" * 500, "nests more than the 100 levels"),
        ("x: &a [1, [2, *a]]", "inside its own anchor"),  # a cycle (it never returned)
    ],
)
def test_a_bottomless_yaml_value_is_refused_clearly(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "deep.yaml", "model:\n  kwargs:\n    " + text + "\n")
    with pytest.raises(ConfigFileError, match="deep.yaml") as info:
        load_config("deep.yaml", environ={})
    assert message in str(info.value)
