"""Sharded checkpoints: each rank of a sharded (FSDP2) model writes its shard, verified.

Real processes (one per rank, gloo on the CPU) run ``sharded_worker.py``; this test then
checks what a user relies on: one listed checkpoint per save, every shard in the
manifest with its size and hash, verify naming a damaged shard and its rank, a bit-exact
resume on the same world size, a re-sharded load on one process, a consolidated file
``torch.load(weights_only=True)`` reads, and a rank killed mid-save leaving no partial
checkpoint while the other rank fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainforge.checkpoint import CheckpointManager, consolidate_checkpoint
from trainforge.errors import CheckpointCorruptedError

WORKER = Path(__file__).with_name("sharded_worker.py")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(mode: str, world: int, directory: Path) -> list[subprocess.CompletedProcess[str]]:
    port = _port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(rank), str(world), str(port), str(directory)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _equal(left: dict, right: dict) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """Two ranks trained 2 and 3 steps and saved a sharded checkpoint after each."""
    directory = tmp_path_factory.mktemp("sharded")
    for proc in _launch("save", 2, directory):
        assert proc.returncode == 0, proc.stderr[-3000:]
    return directory


def test_each_rank_writes_its_shard_and_rank_zero_lists_them_all(saved):
    manager = CheckpointManager(saved / "checkpoints", monitor="loss")
    checkpoints = manager.list_checkpoints()
    assert sorted(c.global_step for c in checkpoints) == [2, 3]  # one per save, not per rank
    assert all(report.ok for report in manager.verify())
    manifest = json.loads((checkpoints[0].path / "manifest.json").read_text())
    sharding = manifest["metadata"]["sharding"]
    assert sharding == {"world_size": 2, "files": {"__0_0.distcp": 0, "__1_0.distcp": 1}}
    assert set(manifest["files"]) == {"__0_0.distcp", "__1_0.distcp", "dcp.metadata", "state.pt"}
    for name, entry in manifest["files"].items():
        assert (checkpoints[0].path / name).stat().st_size == entry["size"]
    assert (saved / "checkpoints" / "last").read_text().strip() == checkpoints[0].path.name


def test_resume_on_the_same_world_size_is_bit_exact(saved):
    # a differently initialised model loaded from step 2, then step 3 again
    assert _equal(torch.load(saved / "reloaded.pt"), torch.load(saved / "step3.pt"))


def test_one_process_loads_it_resharded_and_one_file_holds_it_consolidated(saved, tmp_path):
    for proc in _launch("load", 1, saved):
        assert proc.returncode == 0, proc.stderr[-3000:]
    step2 = torch.load(saved / "step2.pt")
    assert _equal(torch.load(saved / "loaded-1.pt"), step2)

    manager = CheckpointManager(saved / "checkpoints", monitor="loss")
    first = min(manager.list_checkpoints(), key=lambda c: c.global_step).path
    assert _equal(manager.load(first, restore_rng=False)["model_state_dict"], step2)

    written = consolidate_checkpoint(first, tmp_path / "single")
    (payload,) = [p for p in written.iterdir() if p.name != "manifest.json"]
    state = torch.load(payload, weights_only=True)
    assert _equal(state["model_state_dict"], step2)
    assert state["custom_state"] == {"note": "two steps"}
    assert CheckpointManager(tmp_path / "single", monitor="loss").verify()[0].ok


def test_a_damaged_or_missing_shard_is_named_with_its_rank(saved, tmp_path):
    import shutil

    copy = tmp_path / "checkpoints"
    shutil.copytree(saved / "checkpoints", copy)
    manager = CheckpointManager(copy, monitor="loss")
    newest = max(manager.list_checkpoints(), key=lambda c: c.global_step).path
    shard = newest / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (report,) = manager.verify(newest)
    assert not report.ok and report.bad_file == "__1_0.distcp"
    assert "rank 1's shard of 2" in (report.problem or "")
    with pytest.raises(CheckpointCorruptedError, match="rank 1's shard"):
        manager.load(newest, restore_rng=False)
    # resume falls back to the newest complete checkpoint
    with pytest.warns(RuntimeWarning, match="rank 1's shard of 2.*loading the newest valid"):
        fallen = manager.load(newest, restore_rng=False, fallback=True)
    assert fallen["global_step"] == 2

    shard.unlink()
    (report,) = manager.verify(newest)
    assert not report.ok and "rank 1's shard" in (report.problem or "")


def test_a_rank_killed_mid_save_leaves_no_partial_checkpoint(tmp_path):
    survivor, killed = _launch("kill", 2, tmp_path)
    assert killed.returncode == -9
    assert survivor.returncode == 3, survivor.stderr[-3000:]
    assert "CheckpointSaveError" in (tmp_path / "error.txt").read_text()
    manager = CheckpointManager(tmp_path / "checkpoints", monitor="loss")
    assert [c.global_step for c in manager.list_checkpoints()] == [2]
    assert manager.load("last", restore_rng=False)["global_step"] == 2
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


def test_the_ckpt_commands_work_on_sharded_checkpoints(saved, tmp_path, capsys, monkeypatch):
    from trainforge.cli import main

    monkeypatch.setenv("COLUMNS", "300")
    root = saved / "checkpoints"
    assert main(["ckpt", "verify", str(root)]) == 0
    assert "verified 2 checkpoint(s)" in capsys.readouterr().out
    assert main(["ckpt", "inspect", str(root / "last"), "--json"]) == 0
    out = capsys.readouterr().out
    info = json.loads(out)
    assert info["metadata"]["sharding"]["world_size"] == 2
    # the unsharded tensors, as every rank together held them
    shapes = {t["name"]: t["shape"] for t in info["tensors"]}
    assert shapes["model_state_dict/0.weight"] == [32, 8]
    assert main(["ckpt", "consolidate", str(root / "last"), "--output", str(tmp_path / "one")]) == 0
    (written,) = CheckpointManager(tmp_path / "one", monitor="loss").list_checkpoints()
    assert written.global_step == 3
    # an ordinary checkpoint is refused, not copied
    assert main(["ckpt", "consolidate", str(written.path), "--output", str(tmp_path / "x")]) == 1
    assert "is not sharded" in capsys.readouterr().err
