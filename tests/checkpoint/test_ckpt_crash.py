"""SIGKILL before every filesystem step of ``migrate`` and ``prune``: nothing is ever lost.

A "zygote" process imports torch and trainforge once, then forks one child per kill
point. The child counts every durable filesystem step (mkdir, rename, replace, fsync,
unlink, rmdir, rmtree) of one operation and SIGKILLs itself just before step N. The test
then opens the directory as a new process would and checks that every checkpoint is
there, verifies and loads, that the pointers name complete checkpoints, and that running
the operation again finishes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import FORMAT_VERSION, MANIFEST_NAME, CheckpointManager

_ZYGOTE = textwrap.dedent(
    """
    import os, shutil, signal, sys
    import torch
    torch.set_num_threads(1)
    from trainforge.checkpoint import CheckpointManager

    def arm(kill_at):
        count = [0]
        def wrap(fn):
            def inner(*args, **kwargs):
                count[0] += 1
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return fn(*args, **kwargs)
            return inner
        for name in ("rename", "replace", "fsync", "mkdir", "unlink", "rmdir"):
            setattr(os, name, wrap(getattr(os, name)))
        shutil.rmtree = wrap(shutil.rmtree)
        return count

    print("ready", flush=True)
    for line in sys.stdin:
        op, root, name, kill_at = line.split()
        pid = os.fork()
        if pid == 0:
            if op == "migrate":
                manager = CheckpointManager(root, monitor=None)
                count = arm(int(kill_at))
                manager.migrate(os.path.join(root, name))
            else:
                manager = CheckpointManager(root, keep_best_k=1, keep_last_n=1)
                count = arm(int(kill_at))
                manager.prune()
            print(f"steps {count[0]}", flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(f"status {status}", flush=True)
    """
)


class Zygote:
    """Runs one operation per request in a fresh fork, killed before step ``kill_at``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line().startswith("ready")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def run(self, op: str, root: Path, name: str, kill_at: int) -> int | None:
        """Steps the operation took when it finished, or None when it was killed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{op} {root} {name} {kill_at}\n")
        self.proc.stdin.flush()
        steps = None
        while not (line := self._line()).startswith("status"):
            steps = int(line.split()[1])
        return steps

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    process = Zygote()
    yield process
    process.close()


def _v1_checkpoint(root: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """A checkpoint as format 1 wrote it (one pickle, a flat manifest)."""
    name = "ckpt-000001-epoch0003-step000300"
    directory = root / name
    directory.mkdir(parents=True)
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    torch.save({"model": weights, "optimizer": None, "scheduler": None, "extra": {"n": 1}},
               directory / "checkpoint.pt")  # fmt: skip
    data = (directory / "checkpoint.pt").read_bytes()
    manifest = {
        "version": 1,
        "file": "checkpoint.pt",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "epoch": 3,
        "step": 300,
        "metrics": {"val_loss": 0.42},
        "created": 1764000000.0,
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    return name, weights


def _hidden(root: Path) -> list[str]:
    prefixes = (".tmp-", ".trash-", ".replaced-")
    return sorted(p.name for p in root.iterdir() if p.name.startswith(prefixes) and p.is_dir())


def _each_kill_point(
    zygote: Zygote, op: str, pristine: Path, work: Path, name: str
) -> Iterator[Path]:
    """Yield the directory after a kill before each step (and after a clean run)."""
    shutil.copytree(pristine, work / "dry")
    total = zygote.run(op, work / "dry", name, 0)
    assert total is not None and total >= 8, total
    for kill_at in range(1, total + 2):
        root = work / f"kill-{kill_at}"
        shutil.copytree(pristine, root)
        finished = zygote.run(op, root, name, kill_at)
        assert (finished is None) == (kill_at <= total)
        yield root


@pytest.mark.slow
def test_migrate_killed_before_any_step_leaves_the_checkpoint_loadable(
    zygote: Zygote, tmp_path: Path
) -> None:
    pristine = tmp_path / "pristine"
    name, weights = _v1_checkpoint(pristine)
    for root in _each_kill_point(zygote, "migrate", pristine, tmp_path, name):
        manager = CheckpointManager(root, monitor=None)  # a new process: recovers first
        assert [c.name for c in manager.list_checkpoints()] == [name], root.name
        loaded = manager.load(name, restore_rng=False)
        assert torch.equal(loaded["model_state_dict"]["w"], weights["w"])
        assert loaded["custom_state"] == {"n": 1} and loaded["global_step"] == 300
        manager.migrate(root / name)  # finishing the job works from any state
        manifest = json.loads((root / name / MANIFEST_NAME).read_text())
        assert manifest["format_version"] == FORMAT_VERSION
        manager.prune()
        assert _hidden(root) == [], root.name


@pytest.mark.slow
def test_prune_killed_before_any_step_keeps_pointers_and_checkpoints_valid(
    zygote: Zygote, tmp_path: Path, save_many: Any
) -> None:
    pristine = tmp_path / "pristine"
    manager = CheckpointManager(pristine, keep_best_k=9, keep_last_n=9)
    paths = save_many(manager, [0.5, 0.2, 0.4, 0.3])
    (pristine / ".tmp-epoch0009-step000009-deadbeef0000").mkdir()  # a dead writer's
    (pristine / ".trash-ckpt-000009-epoch0009-step000009-0bad").mkdir()
    expected = {paths[1].name, paths[3].name}  # the best and the newest
    for root in _each_kill_point(zygote, "prune", pristine, tmp_path, "-"):
        manager = CheckpointManager(root, keep_best_k=1, keep_last_n=1)
        listed = {c.name for c in manager.list_checkpoints()}
        assert expected <= listed <= {p.name for p in paths}, root.name
        assert all(report.ok for report in manager.verify())
        for pointer in ("last", "best"):
            assert (root / pointer).read_text().strip() in listed, (root.name, pointer)
        assert manager.load("last", restore_rng=False)["path"].name == paths[3].name
        manager.prune()
        assert {c.name for c in manager.list_checkpoints()} == expected
        assert _hidden(root) == [], root.name
