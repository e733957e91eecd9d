"""User models and datasets by import path, and the errors for bad paths."""

from __future__ import annotations

import textwrap

import pytest
import torch

from trainforge.errors import ConfigError, TrainforgeError
from trainforge.zoo import ImportPathError, build_datasets, build_model, get_task_spec

USER_MODULE = """
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self, width, task_spec=None):
        super().__init__()
        self.task_spec = task_spec
        self.layer = nn.Linear(width, 2)

    def forward(self, inputs):
        return self.layer(inputs)


class Plain(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.layer = nn.Linear(width, 1)


def not_a_model():
    return 42


def pairs(size, val_split, seed):
    generator = torch.Generator().manual_seed(seed)
    data = [{"inputs": torch.rand(2, generator=generator), "labels": torch.tensor(0)}
            for _ in range(size)]
    cut = int(size * (1 - val_split))
    return data[:cut], data[cut:]


def single(size):
    return list(range(size))
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_parts.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_parts"


def test_model_by_import_path_gets_kwargs_and_task_spec(user_module):
    spec = get_task_spec("digits")
    model = build_model(f"{user_module}:Linear", spec, width=4)
    assert model.task_spec is spec
    assert model(torch.rand(3, 4)).shape == (3, 2)


def test_model_without_task_spec_parameter_gets_only_kwargs(user_module):
    model = build_model(f"{user_module}:Plain", get_task_spec("digits"), width=5)
    assert model.layer.in_features == 5


def test_datasets_by_import_path(user_module):
    train, val = build_datasets(f"{user_module}:pairs", None, val_split=0.25, seed=1, size=8)
    assert (len(train), len(val)) == (6, 2)
    again, _ = build_datasets(f"{user_module}:pairs", None, val_split=0.25, seed=1, size=8)
    assert torch.equal(train[0]["inputs"], again[0]["inputs"])


def test_missing_module_names_the_path():
    with pytest.raises(ImportPathError, match="no module named 'no_such_pkg'") as info:
        build_model("no_such_pkg.models:Net", get_task_spec("digits"))
    assert "no_such_pkg.models:Net" in str(info.value)
    assert isinstance(info.value, TrainforgeError) and isinstance(info.value, ImportError)


def test_missing_attribute_suggests_the_closest(user_module):
    with pytest.raises(ImportPathError, match="has no attribute 'Linaer'") as info:
        build_model(f"{user_module}:Linaer", get_task_spec("digits"))
    assert "did you mean 'Linear'" in str(info.value)


def test_missing_dataset_factory(user_module):
    with pytest.raises(ImportPathError, match=f"{user_module}:nope"):
        build_datasets(f"{user_module}:nope", None, val_split=0.2, seed=0)


def test_malformed_path():
    with pytest.raises(ImportPathError, match="malformed"):
        build_model("user_parts:", get_task_spec("digits"))


def test_wrong_kwargs_for_a_user_class(user_module):
    with pytest.raises(ConfigError, match="accepted arguments: width"):
        build_model(f"{user_module}:Plain", get_task_spec("digits"), depth=2)


def test_factory_must_return_a_model(user_module):
    with pytest.raises(TrainforgeError, match="not a torch.nn.Module"):
        build_model(f"{user_module}:not_a_model", get_task_spec("digits"))


def test_dataset_factory_must_return_two_datasets(user_module):
    with pytest.raises(TrainforgeError, match=r"must return \(train, val\)"):
        build_datasets(f"{user_module}:single", None, val_split=0.2, seed=0, size=3)
