"""``TrainingConfig()`` resolves ``${...}`` like a loaded config; ``update`` re-resolves."""

from __future__ import annotations

import pytest

from trainforge.config import TrainingConfig, load_config
from trainforge.errors import ConfigError

FOLLOWERS = (
    "loggers.csv.save_dir",
    "loggers.tensorboard.save_dir",
    "callbacks.profiler.trace_dir",
)


def _value(config: TrainingConfig, key: str):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def test_a_config_built_in_code_has_no_literal_interpolations():
    config = TrainingConfig()
    assert "${" not in str(config.to_dict())
    assert config.loggers.csv.save_dir == config.run.output_dir == "outputs"
    assert config.provenance_of("loggers.csv.save_dir").is_default
    custom = TrainingConfig(run={"output_dir": "elsewhere"})
    assert custom.loggers.csv.save_dir == "elsewhere"
    assert custom.provenance_of("run.output_dir").source == "override"


@pytest.mark.parametrize("build", [TrainingConfig, lambda: load_config(cli=["optim.lr=0.1"])])
def test_update_re_resolves_every_value_that_interpolates_the_key(tmp_path, build):
    config = build()
    config.update("run.output_dir", str(tmp_path / "a"))
    for key in FOLLOWERS:
        assert str(_value(config, key)).startswith(str(tmp_path / "a")), key
    # a value set explicitly stops following; the others keep following
    config.update("loggers.csv.save_dir", str(tmp_path / "mine"))
    config.update("run.output_dir", str(tmp_path / "b"))
    assert config.loggers.csv.save_dir == str(tmp_path / "mine")
    assert config.callbacks.profiler.trace_dir == str(tmp_path / "b" / "profiler")


def test_a_validated_copy_still_re_resolves(tmp_path):
    config = load_config(cli=["optim.lr=0.1"]).validate()
    config.update("run.output_dir", str(tmp_path / "v"))
    for key in FOLLOWERS:
        assert str(_value(config, key)).startswith(str(tmp_path / "v")), key


def test_an_update_that_breaks_validation_keeps_the_old_values(tmp_path):
    config = TrainingConfig()
    config.update("run.output_dir", str(tmp_path))
    with pytest.raises(ConfigError):
        config.update("optim.lr", -1)
    assert config.loggers.csv.save_dir == str(tmp_path)
    config.update("run.output_dir", str(tmp_path / "c"))
    assert config.loggers.csv.save_dir == str(tmp_path / "c")
