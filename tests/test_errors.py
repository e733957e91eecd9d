import pickle

import pytest

from trainforge.errors import (
    CheckpointCorruptedError,
    CheckpointNotFoundError,
    ConfigError,
    ConfigIssue,
    FilterSyntaxError,
    MissingDependencyError,
    RegistryError,
    TrainforgeError,
    did_you_mean,
)


def test_errors_carry_where_and_how_to_fix():
    err = TrainforgeError("bad value", file="train.yaml", key="optim.lr", hint="use a float")
    assert err.file == "train.yaml"
    assert err.key == "optim.lr"
    assert str(err) == "bad value\n  hint: use a float"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (CheckpointNotFoundError("missing"), FileNotFoundError),
        (CheckpointCorruptedError("corrupt"), ValueError),
        (ConfigError("bad"), ValueError),
        (RegistryError("unknown"), KeyError),
        (MissingDependencyError("wandb", extra="wandb", feature="W&B logging"), ImportError),
    ],
)
def test_domain_errors_subclass_the_matching_builtin(error, builtin):
    assert isinstance(error, builtin)
    assert isinstance(error, TrainforgeError)


def test_config_error_lists_every_issue():
    err = ConfigError(
        "invalid configuration: 2 problems",
        issues=[ConfigIssue("optim.lr", "must be > 0", "cli"), ConfigIssue("x", "unknown key")],
    )
    text = str(err)
    assert "optim.lr: must be > 0 (set by cli)" in text
    assert "x: unknown key" in text


def test_corrupted_error_names_hashes_and_alternative():
    err = CheckpointCorruptedError(
        "sha256 mismatch in /ckpt/a/model.pt",
        path="/ckpt/a/model.pt",
        expected="aa",
        actual="bb",
        alternative="/ckpt/b",
    )
    text = str(err)
    assert "expected sha256: aa" in text
    assert "actual sha256:   bb" in text
    assert "/ckpt/b" in text


def test_filter_syntax_error_points_at_position():
    err = FilterSyntaxError("unexpected token '<'", text="metrics.loss << 1", position=13)
    lines = str(err).splitlines()
    assert lines[0].endswith("at position 13")
    assert lines[2].index("^") == lines[1].index("<")


def test_missing_dependency_names_the_extra():
    err = MissingDependencyError("wandb", extra="wandb", feature="The W&B logger")
    assert "pip install 'trainforge[wandb]'" in str(err)


def test_errors_survive_pickling_for_worker_processes():
    err = pickle.loads(pickle.dumps(ConfigError("bad", issues=[], key="optim.lr", hint="fix")))
    assert isinstance(err, ConfigError)
    assert err.key == "optim.lr"
    assert "hint: fix" in str(err)


def test_did_you_mean():
    assert did_you_mean("optim.lrr", ["optim.lr", "data.batch_size"]) == "optim.lr"
    assert did_you_mean("zzz", ["optim.lr"]) is None


def test_every_exception_class_is_defined_in_errors_py():
    import ast
    from pathlib import Path

    import trainforge

    package = Path(trainforge.__file__).parent
    outside = []
    for path in package.rglob("*.py"):
        if path.name == "errors.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", getattr(base, "attr", "")).endswith(("Error", "Exception"))
                for base in node.bases
            ):
                outside.append(f"{path.relative_to(package)}:{node.lineno} {node.name}")
    assert not outside, "exception classes belong in trainforge/errors.py: " + ", ".join(outside)
