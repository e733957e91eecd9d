"""Property tests: the highest layer wins, provenance names it, save/load and hashing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from trainforge.config import TrainingConfig, load_config
from trainforge.errors import ConfigFileError

# leaf key -> strategy of valid values
KEYS = {
    "optim.lr": st.floats(min_value=1e-6, max_value=10, allow_nan=False),
    "optim.weight_decay": st.floats(min_value=0, max_value=1, allow_nan=False),
    "data.batch_size": st.integers(min_value=1, max_value=4096),
    "trainer.max_epochs": st.integers(min_value=1, max_value=1000),
    "run.seed": st.integers(min_value=0, max_value=2**32 - 1),
    "run.deterministic": st.booleans(),
    "trainer.log_every_n_steps": st.integers(min_value=1, max_value=500),
    "model.kwargs.width": st.integers(min_value=1, max_value=512),
}
UNHASHED = {"trainer.log_every_n_steps"}  # run-only: excluded from config_hash by design
LAYERS = ["file", "env", "envvar", "cli", "override"]

assignments = st.dictionaries(
    st.sampled_from(sorted(KEYS)),
    st.lists(st.sampled_from(LAYERS), min_size=1, max_size=5, unique=True),
    min_size=1,
)


def _yaml_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _nest(flat: dict[str, object]) -> dict:
    root: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root


@settings(max_examples=40, deadline=None)
@given(assignments, st.data())
def test_highest_layer_wins_and_is_named(plan, data):
    values = {
        key: {layer: data.draw(KEYS[key]) for layer in layers} for key, layers in plan.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        by_layer: dict[str, dict[str, object]] = {layer: {} for layer in LAYERS}
        for key, per_layer in values.items():
            for layer, value in per_layer.items():
                by_layer[layer][key] = value
        document = {**_nest(by_layer["file"]), "environments": {"dev": _nest(by_layer["env"])}}
        path = Path(tmp) / "train.yaml"
        path.write_text(yaml.safe_dump(document))
        environ = {
            "TRAINFORGE__" + k.replace(".", "__").upper(): _yaml_value(v)
            for k, v in by_layer["envvar"].items()
        }
        cfg = load_config(
            path,
            env="dev",
            environ=environ,
            cli=[f"{k}={_yaml_value(v)}" for k, v in by_layer["cli"].items()],
            overrides=by_layer["override"],
        )
    expected_source = {
        "file": "config:",
        "env": "env:dev",
        "envvar": "envvar:",
        "cli": "cli",
        "override": "override",
    }
    flat = {k: v for k, v in _flatten(cfg.to_dict()).items()}
    for key, per_layer in values.items():
        top = max(per_layer, key=LAYERS.index)
        assert flat[key] == per_layer[top], (key, per_layer)
        assert cfg.provenance_of(key).source.startswith(expected_source[top]), key


def _flatten(data, prefix=""):
    out = {}
    for k, v in data.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(_flatten(v, path))
        else:
            out[path] = v
    return out


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(KEYS)), st.just(None), min_size=1), st.data())
def test_save_load_keeps_values_and_provenance(keys, data):
    overrides = {key: data.draw(KEYS[key]) for key in keys}
    cfg = load_config(overrides=overrides, environ={})
    with tempfile.TemporaryDirectory() as tmp:
        loaded = TrainingConfig.load(cfg.save(Path(tmp) / "c.yaml"))
    assert loaded.to_dict() == cfg.to_dict()
    assert loaded.provenance == cfg.provenance


folders = st.text(alphabet="abcdefghij_-/", min_size=1, max_size=12).map(lambda s: "o" + s)


@settings(max_examples=15, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(KEYS)), st.just(None)),
    st.lists(st.sampled_from(sorted(KEYS)), max_size=3),
    st.one_of(st.none(), folders),
    folders,
    st.data(),
)
def test_a_saved_config_loads_back_equal_and_keeps_following_its_interpolations(
    keys, updated, output_dir, moved, data
):
    overrides = {key: data.draw(KEYS[key]) for key in keys}
    if output_dir is not None:
        overrides["run.output_dir"] = output_dir
    cfg = load_config(overrides=overrides, environ={})
    for key in updated:
        cfg.update(key, data.draw(KEYS[key]), reason="tuned")
    with tempfile.TemporaryDirectory() as tmp:
        loaded = TrainingConfig.load(cfg.save(Path(tmp) / "c.yaml"))
    assert loaded == cfg
    # the loggers' folders interpolate run.output_dir, on the loaded config as well
    for config in (cfg, loaded):
        config.update("run.output_dir", moved)
        assert config.loggers.csv.save_dir == moved
    assert loaded == cfg


def test_a_saved_config_with_bad_templates_is_refused(tmp_path):
    path = TrainingConfig().save(tmp_path / "c.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["templates"] = {"optim.lrr": "${run.seed}"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigFileError, match="'templates' must map config keys") as info:
        TrainingConfig.load(path)
    assert "delete the 'templates' entry" in info.value.user_message()
    del raw["templates"]  # a file written before templates were saved
    path.write_text(yaml.safe_dump(raw))
    assert TrainingConfig.load(path).to_dict() == TrainingConfig().to_dict()


def _reorder(data):
    if isinstance(data, dict):
        return {k: _reorder(data[k]) for k in reversed(list(data))}
    return data


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(k for k in KEYS if k not in UNHASHED)), st.data())
def test_hash_is_order_independent_and_sensitive(key, data):
    cfg = load_config(environ={})
    reordered = _reorder(cfg.to_dict())
    assert list(reordered) != list(cfg.to_dict())
    assert TrainingConfig.from_dict(reordered).config_hash() == cfg.config_hash()
    value = data.draw(KEYS[key])
    changed = load_config(overrides={key: value}, environ={})
    if _flatten(changed.to_dict())[key] != _flatten(cfg.to_dict()).get(key):
        assert changed.config_hash() != cfg.config_hash()
    else:
        assert changed.config_hash() == cfg.config_hash()
