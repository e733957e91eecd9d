"""Faults during save: SIGKILL at random moments, a full disk, a read-only filesystem."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import CheckpointManager
from trainforge.errors import CheckpointSaveError

# A "zygote" imports torch and builds a ~104 MB state once, then forks one saver per
# request: each saver saves in a loop until the test SIGKILLs it. Forking keeps each
# restart instant, so 20+ kills fit in well under a minute.
_ZYGOTE = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from trainforge.checkpoint import CheckpointManager
    from trainforge.hooks import HookEvent, HookManager

    root = sys.argv[1]
    big = torch.randn(26_000_000)
    print("ready", flush=True)
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            hooks = HookManager()
            # fires after the rename, right before retention deletes the old checkpoints
            hooks.register(HookEvent.ON_BEST_CHECKPOINT, lambda ctx: print("retention", flush=True))
            manager = CheckpointManager(root, keep_best_k=0, keep_last_n=2, hooks=hooks)
            listed = manager.list_checkpoints()
            step = listed[0].global_step if listed else 0
            while True:
                step += 1
                state = {"big": big, "step": torch.tensor(step)}
                manager.save(model=state, epoch=step, global_step=step,
                             metrics={"val_loss": 1.0 / step})
                print(f"saved {step}", flush=True)
        print(f"pid {pid}", flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
    """
)


def _read_until(stream: Any, prefix: str) -> str:
    while True:
        line = stream.readline()
        if not line:
            raise AssertionError(f"child ended before printing {prefix!r}")
        if line.startswith(prefix):
            return line.strip()


def _check_consistent(root: Path, last_saved: int) -> int:
    manager = CheckpointManager(root, keep_best_k=0, keep_last_n=2)
    listed = manager.list_checkpoints()
    reports = manager.verify()
    assert all(r.ok for r in reports), [r for r in reports if not r.ok]
    assert {r.path for r in reports} == {c.path for c in listed}
    if not listed:
        assert last_saved == 0
        return 0
    loaded = manager.load("last", restore_rng=False)
    assert loaded["path"] == listed[0].path
    step = int(loaded["model_state_dict"]["step"])
    assert step == loaded["global_step"] >= last_saved  # nothing reported saved was lost
    assert loaded["model_state_dict"]["big"].numel() == 26_000_000
    return step


@pytest.mark.slow
def test_sigkill_during_saves_and_deletes_never_leaves_a_bad_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(1234)
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    kills, confirmed = 0, 0
    try:
        _read_until(zygote.stdout, "ready")
        for round_ in range(22):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            pid = int(_read_until(zygote.stdout, "pid").split()[1])
            if round_ % 2:  # aim at retention: kill a few ms after the rename
                _read_until(zygote.stdout, "retention")
                time.sleep(rng.uniform(0, 0.03))
            else:  # anywhere in the save of ~104 MB that follows a completed one
                saved = _read_until(zygote.stdout, "saved")
                confirmed = max(confirmed, int(saved.split()[1]))
                time.sleep(rng.uniform(0, 0.8))
            os.kill(pid, signal.SIGKILL)
            kills += 1
            for line in iter(zygote.stdout.readline, ""):
                if line.startswith("saved"):
                    confirmed = max(confirmed, int(line.split()[1]))
                if line.startswith("reaped"):
                    break
            assert _check_consistent(tmp_path, confirmed) >= confirmed
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
        zygote.stdout.close()
    assert kills >= 20 and confirmed > 0
    report = CheckpointManager(tmp_path, keep_best_k=0, keep_last_n=2).prune()
    assert report["incomplete"] == []
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert all(name.endswith(".lock") for name in leftovers)  # stale locks go after 60 s


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Any:
    """A 1 MiB tmpfs mounted for the test (needs root and mount rights)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_failed_save_is_clear_and_keeps_previous(
    tiny_fs: Path, make_training: Any, fault: str
) -> None:
    manager = CheckpointManager(tiny_fs / "ckpts")
    model, _, _ = make_training()
    first = manager.save(model=model, epoch=0, global_step=1, metrics={"val_loss": 1.0})
    big = {"w": torch.zeros(1024 * 1024)}  # 4 MiB: more than the whole filesystem
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
        expected = "Read-only file system"
    else:
        expected = "No space left on device"
    with pytest.raises(CheckpointSaveError, match=expected) as info:
        manager.save(model=big, epoch=1, global_step=2, metrics={"val_loss": 0.5})
    assert str(tiny_fs / "ckpts") in str(info.value)
    assert isinstance(info.value, OSError)
    assert [c.path for c in manager.list_checkpoints()] == [first]
    assert manager.load("last", restore_rng=False)["global_step"] == 1
    assert [p.name for p in (tiny_fs / "ckpts").iterdir() if p.name.startswith(".tmp-")] == []
