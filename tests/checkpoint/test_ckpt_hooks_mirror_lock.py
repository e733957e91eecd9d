"""Hook order, the background mirror, and the reader lock that blocks deletion."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import fsspec

from trainforge.checkpoint import MANIFEST_NAME, CheckpointManager
from trainforge.hooks import HookEvent, HookManager


def test_hooks_fire_in_order_and_by_priority(tmp_path: Path, save_many: Any) -> None:
    hooks = HookManager()
    seen: list[str] = []
    for event in HookEvent:
        hooks.register(event, lambda ctx: seen.append(ctx.event.value))
    hooks.register(HookEvent.AFTER_CHECKPOINT_SAVE, lambda ctx: seen.append("first"), priority=10)
    manager = CheckpointManager(tmp_path, keep_best_k=1, keep_last_n=1, hooks=hooks)
    save_many(manager, [0.5, 0.9])
    assert seen == [
        "before_checkpoint_save",
        "best_checkpoint",
        "retention_applied",
        "first",
        "after_checkpoint_save",
        "before_checkpoint_save",
        "retention_applied",
        "first",
        "after_checkpoint_save",
    ]
    seen.clear()
    manager.load("last")
    assert seen == [
        "before_checkpoint_load",
        "before_integrity_check",
        "after_integrity_check",
        "after_checkpoint_load",
    ]


def test_failing_hook_does_not_break_save(tmp_path: Path, save_many: Any, caplog: Any) -> None:
    hooks = HookManager()
    hooks.register(HookEvent.AFTER_CHECKPOINT_SAVE, lambda ctx: 1 / 0, name="broken")
    manager = CheckpointManager(tmp_path, hooks=hooks)
    save_many(manager, [0.5])
    assert len(manager.list_checkpoints()) == 1
    assert "hook broken failed" in caplog.text


def test_mirror_copies_in_background(tmp_path: Path, save_many: Any) -> None:
    mirror = tmp_path / "mirror"
    manager = CheckpointManager(tmp_path / "local", mirror=f"file://{mirror}")
    paths = save_many(manager, [0.5, 0.4])
    assert manager.wait_for_mirror() == []
    for path in paths:
        copied = mirror / path.name
        assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in path.iterdir())
        assert (copied / MANIFEST_NAME).read_bytes() == (path / MANIFEST_NAME).read_bytes()
    assert (mirror / "last").read_text() == paths[1].name + "\n"
    # the mirror is a checkpoint directory in its own right
    assert CheckpointManager(mirror).load("last")["epoch"] == 1


def test_mirror_to_memory_filesystem(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(tmp_path, mirror="memory://tf-mirror-test")
    (path,) = save_many(manager, [0.5])
    manager.wait_for_mirror()
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"/tf-mirror-test/{path.name}/{MANIFEST_NAME}")


def test_mirror_failure_is_reported_and_local_checkpoint_kept(
    tmp_path: Path, save_many: Any, caplog: Any
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the mirror directory should be")
    manager = CheckpointManager(tmp_path / "local", mirror=f"file://{blocker}/sub")
    (path,) = save_many(manager, [0.5])
    failures = manager.wait_for_mirror()
    assert len(failures) == 1 and failures[0].checkpoint == path
    assert manager.mirror_failures == failures
    assert "mirroring" in caplog.text
    assert manager.load("last")["path"] == path


_READER = textwrap.dedent(
    """
    import sys
    from trainforge.checkpoint import CheckpointManager
    from trainforge.hooks import HookEvent, HookManager

    def hold(ctx):
        print("reading", flush=True)
        sys.stdin.readline()  # keep the reader lock until the parent says so

    hooks = HookManager(raise_on_error=True)
    hooks.register(HookEvent.AFTER_INTEGRITY_CHECK, hold)
    manager = CheckpointManager(sys.argv[1], hooks=hooks)
    manager.load(sys.argv[2])
    print("done", flush=True)
    """
)


def test_reader_in_another_process_blocks_deletion(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=1)
    (first,) = save_many(manager, [0.5])
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(tmp_path), str(first)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "reading"
        save_many(manager, [0.4, 0.3])  # retention wants `first` gone, but it is being read
        assert first.exists()
        assert first in [c.path for c in manager.list_checkpoints()]
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "done"
    finally:
        reader.communicate(timeout=30)
    assert reader.returncode == 0
    manager.apply_retention()
    assert not first.exists()
    assert len(manager.list_checkpoints()) == 1


def test_tracker_records_each_checkpoint(tmp_path: Path, save_many: Any) -> None:
    from trainforge.tracking import ExperimentTracker

    tracker = ExperimentTracker(
        "ckpt-test", database=str(tmp_path / "runs.db"), handle_sigterm=False
    )
    try:
        manager = CheckpointManager(tmp_path / "ckpts", tracker=tracker)
        paths = save_many(manager, [0.5, 0.7])
        run = tracker.db.get_run(tracker.run_id)
    finally:
        tracker.finish()
    assert [a["path"] for a in run["artifacts"]] == [
        str((p / MANIFEST_NAME).resolve()) for p in paths
    ]
    assert run["tags"]["best_checkpoint"] == paths[0].name
