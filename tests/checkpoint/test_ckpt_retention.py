"""Retention policies as tables, and retention as the manager applies it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainforge.checkpoint import (
    AnyOf,
    CheckpointManager,
    CheckpointMetadata,
    KeepBestK,
    KeepEveryNEpochs,
    KeepLastN,
    plan_retention,
)
from trainforge.hooks import HookEvent, HookManager


def _ckpts(
    metrics: list[float | None], protected: tuple[int, ...] = ()
) -> list[CheckpointMetadata]:
    """Checkpoint i has epoch i and the given metric; returned newest first."""
    return [
        CheckpointMetadata(
            path=Path(f"c{i}"),
            index=i,
            epoch=i,
            global_step=i,
            metric=m,
            monitor="val_loss",
            protected=i in protected,
        )
        for i, m in reversed(list(enumerate(metrics)))
    ]


METRICS = [0.9, 0.5, 0.7, 0.3, 0.8, 0.6]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (KeepLastN(2), {"c5", "c4"}),
        (KeepLastN(0), set()),
        (KeepLastN(10), {f"c{i}" for i in range(6)}),
        (KeepBestK(2, "min"), {"c3", "c1"}),
        (KeepBestK(2, "max"), {"c0", "c4"}),
        (KeepBestK(0), set()),
        (KeepEveryNEpochs(2), {"c0", "c2", "c4"}),
        (KeepEveryNEpochs(3), {"c0", "c3"}),
        (AnyOf(KeepBestK(1), KeepLastN(1)), {"c3", "c5"}),
        (AnyOf(KeepBestK(2), KeepLastN(2), KeepEveryNEpochs(5)), {"c1", "c3", "c4", "c5", "c0"}),
    ],
)
def test_policy_table(policy: Any, expected: set[str]) -> None:
    assert policy.keep(_ckpts(METRICS)) == expected


def test_best_k_ignores_unscored_and_nan_and_prefers_newer_ties() -> None:
    ckpts = _ckpts([0.5, None, float("nan"), 0.5])
    assert KeepBestK(1).keep(ckpts) == {"c3"}
    assert KeepBestK(5).keep(ckpts) == {"c0", "c3"}


@pytest.mark.parametrize(
    ("protected", "just_written", "kept"),
    [
        ((), None, {"c5", "c3"}),
        ((0,), None, {"c5", "c3", "c0"}),
        ((), "c2", {"c5", "c3", "c2"}),
    ],
)
def test_plan_keeps_protected_and_just_written(
    protected: tuple[int, ...], just_written: str | None, kept: set[str]
) -> None:
    policy = AnyOf(KeepBestK(1), KeepLastN(1))
    keep, delete = plan_retention(_ckpts(METRICS, protected), policy, just_written=just_written)
    assert {c.name for c in keep} == kept
    assert {c.name for c in delete} == {f"c{i}" for i in range(6)} - kept


@pytest.mark.parametrize(
    ("protected", "just_written", "kept"),
    [
        ((), None, {"c5"}),  # nothing kept by the policy: the newest stays
        ((1,), None, {"c1"}),
        ((), "c2", {"c2"}),
    ],
)
def test_a_policy_that_keeps_nothing_still_leaves_one_checkpoint(
    protected: tuple[int, ...], just_written: str | None, kept: set[str]
) -> None:
    policy = AnyOf(KeepBestK(0), KeepLastN(0))
    keep, delete = plan_retention(_ckpts(METRICS, protected), policy, just_written=just_written)
    assert {c.name for c in keep} == kept
    assert len(delete) == 5
    assert plan_retention([], policy) == ([], [])


@pytest.mark.parametrize(
    ("best_k", "last_n", "losses", "kept_epochs"),
    [
        (1, 1, [0.9, 0.5, 0.7, 0.8], {1, 3}),
        (2, 1, [0.9, 0.5, 0.7, 0.8], {1, 2, 3}),
        (0, 2, [0.9, 0.5, 0.7, 0.8], {2, 3}),
        (3, 0, [0.9, 0.5, 0.7, 0.8], {1, 2, 3}),  # the one just written always stays
        (1, 1, [0.1, 0.5, 0.7, 0.8], {0, 3}),
    ],
)
def test_manager_retention(
    tmp_path: Path,
    save_many: Any,
    best_k: int,
    last_n: int,
    losses: list[float],
    kept_epochs: set[int],
) -> None:
    manager = CheckpointManager(tmp_path, keep_best_k=best_k, keep_last_n=last_n)
    save_many(manager, losses)
    assert {c.epoch for c in manager.list_checkpoints()} == kept_epochs
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt-")} == {
        c.name for c in manager.list_checkpoints()
    }


def test_protected_checkpoint_survives(tmp_path: Path, make_training: Any) -> None:
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=1)
    model, _, _ = make_training()
    keep = manager.save(
        model=model, epoch=0, global_step=0, metrics={"val_loss": 9.0}, protected=True
    )
    for epoch in range(1, 4):
        manager.save(model=model, epoch=epoch, global_step=epoch, metrics={"val_loss": 1.0})
    listed = manager.list_checkpoints()
    assert [c.epoch for c in listed] == [3, 0]
    assert listed[1].path == keep and listed[1].protected


def test_custom_policies_replace_defaults(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(tmp_path, policies=[KeepEveryNEpochs(2)])
    save_many(manager, [0.5] * 5)
    assert [c.epoch for c in manager.list_checkpoints()] == [4, 2, 0]


def test_pointers_flags_and_get_best(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(
        tmp_path, keep_best_k=5, keep_last_n=5, mode="max", monitor="val_loss"
    )
    paths = save_many(manager, [0.1, 0.9, 0.5])
    assert (tmp_path / "last").read_text() == paths[2].name + "\n"
    assert (tmp_path / "best").read_text() == paths[1].name + "\n"
    assert not (tmp_path / "last").is_dir() and (tmp_path / "last").stat().st_size < 100
    assert manager.get_best() == paths[1]
    flags = {c.epoch: (c.is_best, c.is_last) for c in manager.list_checkpoints()}
    assert flags == {0: (False, False), 1: (True, False), 2: (False, True)}
    assert manager.load("best")["epoch"] == 1


def test_retention_hooks_report_deletions(tmp_path: Path, save_many: Any) -> None:
    hooks = HookManager()
    deleted: list[Path] = []
    applied: list[dict] = []
    hooks.register(HookEvent.ON_CHECKPOINT_DELETED, lambda ctx: deleted.append(ctx["path"]))
    hooks.register(HookEvent.ON_RETENTION_APPLIED, lambda ctx: applied.append(ctx.data))
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=1, hooks=hooks)
    paths = save_many(manager, [0.3, 0.2, 0.1])
    assert deleted == paths[:2]
    assert len(applied) == 3 and applied[-1]["deleted"] == [paths[1]]


def test_metadata_cache_is_invalidated_on_write(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(tmp_path, cache_ttl=3600)
    save_many(manager, [0.3])
    manager.list_checkpoints()
    hits = manager.cache.hits
    manager.list_checkpoints()
    assert manager.cache.hits == hits + 1
    save_many(manager, [0.3, 0.2])
    assert len(manager.list_checkpoints()) == 3


def test_prune_removes_only_stale_leftovers(tmp_path: Path, save_many: Any) -> None:
    import os
    import time

    manager = CheckpointManager(tmp_path)
    save_many(manager, [0.5])
    old, fresh = tmp_path / ".last.999.tmp", tmp_path / ".best.998.tmp"
    old.write_text("x")
    fresh.write_text("x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    trash = tmp_path / ".trash-ckpt-000009-epoch0001-step000001-abcd"
    trash.mkdir()
    report = manager.prune()
    assert sorted(report["leftovers"]) == sorted([trash.name, old.name])
    assert fresh.exists() and not old.exists() and not trash.exists()
    assert len(manager.list_checkpoints()) == 1


def test_a_lock_file_that_cannot_be_made_is_a_clear_error_not_a_wait(
    tmp_path: Path, save_many: Any
) -> None:
    from trainforge.errors import CheckpointError

    manager = CheckpointManager(tmp_path, keep_best_k=1, keep_last_n=1, monitor="val_loss")
    save_many(manager, [0.5, 0.4])
    (tmp_path / ".lock").unlink()
    (tmp_path / ".lock").mkdir()  # something in the way, as a read-only directory would be
    with pytest.raises(CheckpointError, match=r"cannot lock .*\.lock") as info:
        CheckpointManager(tmp_path, monitor="val_loss").prune()
    assert "directory you can write" in info.value.user_message()
