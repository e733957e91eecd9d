"""Resume validation: config diff with severities, strict/warn, model keys and shapes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import CheckpointManager, compare_state_dicts
from trainforge.errors import ResumeError
from trainforge.hooks import HookEvent, HookManager

CONFIG = {
    "model": {"name": "mlp", "hidden": 8},
    "optim": {"name": "adamw", "lr": 1e-3},
    "trainer": {"max_epochs": 10},
}


def _changed(**changes: Any) -> dict[str, Any]:
    config = {section: dict(values) for section, values in CONFIG.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


@pytest.fixture
def saved(tmp_path: Path, make_training: Any) -> tuple[CheckpointManager, Path]:
    manager = CheckpointManager(tmp_path)
    model, optimizer, _ = make_training()
    path = manager.save(
        model=model,
        optimizer=optimizer,
        epoch=1,
        global_step=5,
        metrics={"val_loss": 1.0},
        config=CONFIG,
    )
    return manager, path


def test_same_config_resumes_cleanly(saved: tuple[CheckpointManager, Path]) -> None:
    manager, path = saved
    result = manager.resume(path, CONFIG)
    assert result.hash_matches is True and result.changes == []
    assert result.checkpoint["epoch"] == 1


@pytest.mark.parametrize(
    ("changes", "severity"),
    [
        ({"trainer__max_epochs": 20}, "safe"),
        ({"optim__lr": 3e-4}, "risky"),
        ({"optim__name": "sgd"}, "breaking"),
        ({"model__hidden": 16}, "breaking"),
    ],
)
def test_changes_are_classified(
    saved: tuple[CheckpointManager, Path], changes: dict[str, Any], severity: str
) -> None:
    manager, path = saved
    result = manager.resume(path, _changed(**changes), mode="warn")
    assert [c.severity for c in result.changes] == [severity]
    assert result.hash_matches is False


def test_strict_refuses_breaking_change_naming_the_key(
    saved: tuple[CheckpointManager, Path],
) -> None:
    manager, path = saved
    with pytest.raises(ResumeError, match=r"optim\.name: 'adamw' -> 'sgd' \[breaking\]"):
        manager.resume(path, _changed(optim__name="sgd", optim__lr=0.1))


def test_strict_accepts_allowed_change_and_reports_it(
    saved: tuple[CheckpointManager, Path],
) -> None:
    manager, path = saved
    hooks_seen: list[Any] = []
    manager.hooks = HookManager()
    manager.hooks.register(
        HookEvent.ON_RESUME, lambda ctx: hooks_seen.append(ctx["allowed_changes"])
    )
    result = manager.resume(path, _changed(optim__name="sgd"), allow_changes=["optim.name"])
    assert [c.key for c in result.allowed_changes] == ["optim.name"]
    assert hooks_seen == [result.allowed_changes]


def test_warn_mode_logs_and_continues(saved: tuple[CheckpointManager, Path], caplog: Any) -> None:
    manager, path = saved
    with caplog.at_level(logging.WARNING):
        result = manager.resume(path, _changed(model__hidden=16), mode="warn")
    assert result.checkpoint["global_step"] == 5
    assert "model.hidden" in caplog.text and "mode=warn" in caplog.text


def test_model_mismatch_is_named(saved: tuple[CheckpointManager, Path]) -> None:
    manager, path = saved
    other = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    with pytest.raises(
        ResumeError, match=r"shape of 0\.weight: checkpoint \[8, 4\] vs model \[16, 4\]"
    ):
        manager.resume(path, CONFIG, model=other)
    result = manager.resume(path, CONFIG, model=other, mode="warn")
    assert len(result.model_mismatches) == 3  # 2.bias matches


def test_rng_is_not_touched_when_resume_is_refused(saved: tuple[CheckpointManager, Path]) -> None:
    manager, path = saved
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with pytest.raises(ResumeError):
        manager.resume(path, _changed(optim__name="sgd"))
    assert torch.equal(torch.get_rng_state(), before)


def test_compare_state_dicts_names_missing_and_unexpected_keys() -> None:
    model = {"a": torch.zeros(2), "b": torch.zeros(3)}
    saved = {"a": torch.zeros(2), "c": torch.zeros(1)}
    assert compare_state_dicts(model, saved) == ["missing from checkpoint: b", "not in model: c"]
