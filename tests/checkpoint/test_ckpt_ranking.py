"""Ranking and pruning trust the manifests: recorded monitor and mode, nothing unrankable
deleted, never a damaged checkpoint kept in place of an intact one, pointers always valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    CheckpointManager,
    recorded_ranking,
)
from trainforge.cli import main
from trainforge.errors import CheckpointRankingError


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")


def _accuracy_run(root: Path, accuracies: list[float]) -> list[Path]:
    """Checkpoints of a run that monitors val/acc in mode max (the digits default)."""
    manager = CheckpointManager(root, monitor="val/acc", mode="max", keep_best_k=9, keep_last_n=9)
    model = torch.nn.Linear(2, 2)
    return [
        manager.save(model=model, epoch=i, global_step=i, metrics={"val/acc": acc})
        for i, acc in enumerate(accuracies)
    ]


def _pointer(root: Path, name: str) -> str:
    return (root / name).read_text().strip()


def test_cli_prune_ranks_by_the_recorded_monitor_and_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _accuracy_run(tmp_path, [0.50, 0.90, 0.70, 0.60])
    args = ["ckpt", "prune", str(tmp_path), "--keep-best-k", "1", "--keep-last-n", "0"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["retention"]) == sorted(p.name for i, p in enumerate(paths) if i != 1)
    assert [p.name for p in tmp_path.glob("ckpt-*")] == [paths[1].name]  # the best survives
    assert _pointer(tmp_path, "best") == _pointer(tmp_path, "last") == paths[1].name
    loaded = CheckpointManager(tmp_path, monitor="val/acc", mode="max").load("last")
    assert loaded["metrics"] == {"val/acc": 0.9}


def test_cli_prune_keeping_nothing_leaves_the_newest_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _accuracy_run(tmp_path, [0.50, 0.90, 0.70])
    args = ["ckpt", "prune", str(tmp_path), "--keep-best-k", "0", "--keep-last-n", "0", "--json"]
    assert main(args) == 0
    assert sorted(json.loads(capsys.readouterr().out)["retention"]) == sorted(
        p.name for p in paths[:2]
    )
    assert [p.name for p in tmp_path.glob("ckpt-*")] == [paths[2].name]
    assert _pointer(tmp_path, "best") == _pointer(tmp_path, "last") == paths[2].name
    assert CheckpointManager(tmp_path, monitor="val/acc", mode="max").load("last")["epoch"] == 2


def test_cli_list_shows_the_recorded_monitor_and_the_true_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _accuracy_run(tmp_path, [0.50, 0.90, 0.70])
    assert main(["ckpt", "list", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "val/acc" in out and "val_loss" not in out
    rows = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    assert [cells[1].strip() for cells in rows if "best" in cells[5]] == [paths[1].name]
    assert main(["ckpt", "list", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["is_best"] for r in rows] == [False, True, False]
    assert {r["mode"] for r in rows} == {"max"}


@pytest.mark.parametrize(
    "flags",
    [["--monitor", "val_loss"], ["--mode", "min"], ["--monitor", "val/acc", "--mode", "min"]],
)
def test_flags_that_contradict_the_manifests_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    paths = _accuracy_run(tmp_path, [0.5, 0.9])
    for command in ("prune", "list"):
        assert main(["ckpt", command, str(tmp_path), *flags]) == 1
        err = capsys.readouterr().err
        assert "recorded 'val/acc' (max)" in err and "Traceback" not in err
    assert all(p.is_dir() for p in paths)
    assert main(["ckpt", "list", str(tmp_path), "--monitor", "val/acc", "--mode", "max"]) == 0


def test_a_manager_of_another_ranking_refuses_to_save_or_prune_there(tmp_path: Path) -> None:
    paths = _accuracy_run(tmp_path, [0.5, 0.9])
    manager = CheckpointManager(tmp_path, keep_best_k=1, keep_last_n=0)  # val_loss, min
    with pytest.raises(CheckpointRankingError, match="ranked by 'val/acc' \\(max\\)"):
        manager.save(model=torch.nn.Linear(2, 2), epoch=5, global_step=5, metrics={"val_loss": 1})
    with pytest.raises(CheckpointRankingError):
        manager.prune()
    with pytest.raises(CheckpointRankingError):
        manager.load("best")
    assert manager.load("last")["path"] == paths[1]  # "last" needs no ranking
    assert sorted(tmp_path.glob("ckpt-*")) == paths
    assert recorded_ranking(tmp_path) == ("val/acc", "max")


def test_checkpoints_that_recorded_no_monitor_rank_by_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = CheckpointManager(tmp_path, monitor=None, keep_last_n=9)
    model = torch.nn.Linear(2, 2)
    paths = [
        manager.save(model=model, epoch=i, global_step=i, metrics={"val/acc": acc})
        for i, acc in enumerate([0.3, 0.8, 0.6])
    ]
    args = ["ckpt", "prune", str(tmp_path), "--keep-best-k", "1", "--keep-last-n", "0", "--json"]
    assert main([*args, "--monitor", "val/acc", "--mode", "max"]) == 0
    assert json.loads(capsys.readouterr().out)["retention"] == [paths[2].name, paths[0].name]
    assert _pointer(tmp_path, "best") == paths[1].name


def test_prune_keeps_newer_format_and_unreadable_checkpoints_unless_asked(
    tmp_path: Path, save_many: Any
) -> None:
    old, newer = save_many(CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=9), [0.5, 0.4])
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=1)
    manifest = json.loads((newer / MANIFEST_NAME).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1  # written by a future trainforge
    (newer / MANIFEST_NAME).write_text(json.dumps(manifest))
    report = manager.prune()
    assert report["incomplete"] == [] and report["unreadable"] == [newer.name]
    assert "newer than this trainforge supports" in report["reasons"][newer.name]
    assert newer.is_dir() and old.is_dir() and report["retention"] == []
    assert _pointer(tmp_path, "last") == old.name
    report = manager.prune(remove_unreadable=True)
    assert report["removed_unreadable"] == [newer.name] and not newer.exists()


def test_prune_never_keeps_a_damaged_newest_checkpoint_in_place_of_intact_ones(
    tmp_path: Path, save_many: Any
) -> None:
    paths = save_many(CheckpointManager(tmp_path, keep_best_k=9, keep_last_n=9), [0.5, 0.4, 0.3])
    payload = paths[2] / "state.pt"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=1)
    report = manager.prune()
    assert report["unreadable"] == [paths[2].name]
    assert report["retention"] == [paths[0].name]
    assert paths[1].is_dir() and paths[2].is_dir()  # the newest intact one, and the damaged
    assert _pointer(tmp_path, "last") == paths[1].name
    assert manager.load(paths[1])["epoch"] == 1


def test_retention_after_a_save_skips_a_damaged_kept_checkpoint(
    tmp_path: Path, save_many: Any
) -> None:
    paths = save_many(CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=9), [0.5, 0.4])
    (paths[1] / "state.pt").write_bytes(b"garbage")  # the one keep_last_n=2 would keep
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=2)
    newest = manager.save(
        model=torch.nn.Linear(4, 2), epoch=5, global_step=5, metrics={"val_loss": 0.1}
    )
    assert {p.name for p in tmp_path.glob("ckpt-*")} == {paths[0].name, paths[1].name, newest.name}


@pytest.mark.parametrize(
    "policy", [{"keep_best_k": 1, "keep_last_n": 0}, {"keep_best_k": 0, "keep_last_n": 1}]
)
def test_pointers_name_complete_checkpoints_after_any_prune(
    tmp_path: Path, save_many: Any, policy: dict[str, int]
) -> None:
    save_many(CheckpointManager(tmp_path, keep_best_k=9, keep_last_n=9), [0.1, 0.5, 0.9])
    manager = CheckpointManager(tmp_path, **policy)
    manager.prune()
    names = {c.name for c in manager.list_checkpoints()}
    assert _pointer(tmp_path, "last") in names
    if (tmp_path / "best").exists():
        assert _pointer(tmp_path, "best") in names
    assert manager.load("last")["path"].name == _pointer(tmp_path, "last")
