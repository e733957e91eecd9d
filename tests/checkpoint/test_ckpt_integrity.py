"""Damaged checkpoints are detected before deserialising, named, and never spread."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import MANIFEST_NAME, CheckpointManager
from trainforge.checkpoint._integrity import hash_file
from trainforge.errors import CheckpointCorruptedError, UnsafeCheckpointError


def _flip_byte(ckpt: Path) -> str:
    path = ckpt / "state.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "state.pt"


def _truncate(ckpt: Path) -> str:
    path = ckpt / "state.pt"
    path.write_bytes(path.read_bytes()[:100])
    return "state.pt"


def _remove_payload(ckpt: Path) -> str:
    (ckpt / "state.pt").unlink()
    return "state.pt"


def _remove_manifest(ckpt: Path) -> str:
    (ckpt / MANIFEST_NAME).unlink()
    return MANIFEST_NAME


def _garble_manifest(ckpt: Path) -> str:
    path = ckpt / MANIFEST_NAME
    path.write_text(path.read_text()[:-40])
    return MANIFEST_NAME


DAMAGE: dict[str, tuple[Callable[[Path], str], str]] = {
    "flipped byte": (_flip_byte, "sha256 differs"),
    "truncated": (_truncate, "truncated"),
    "missing payload": (_remove_payload, "missing"),
    "deleted manifest": (_remove_manifest, "no manifest.json"),
    "garbled manifest": (_garble_manifest, "garbled"),
}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".readers" not in p.parts)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_is_detected_named_and_isolated(
    manager: CheckpointManager, save_many: Any, damage: str
) -> None:
    first, second = save_many(manager, [0.5, 0.4])
    breaker, message = DAMAGE[damage]
    bad_file = breaker(second)
    before = _tree(manager.root)

    with pytest.raises(CheckpointCorruptedError, match=message) as info:
        manager.load(second)
    error = info.value
    assert bad_file in str(error.path)
    assert error.alternative == str(first)
    assert "newest valid alternative" in str(error)
    if damage == "flipped byte":
        assert (
            error.expected
            == json.loads((second / MANIFEST_NAME).read_text())["files"]["state.pt"]["sha256"]
        )
        assert error.actual == hash_file(second / "state.pt")[0]

    reports = {r.path.name: r for r in manager.verify()}
    assert reports[first.name].ok
    assert not reports[second.name].ok
    assert reports[second.name].bad_file == bad_file

    with pytest.warns(RuntimeWarning, match="loading the newest valid checkpoint"):
        loaded = manager.load(second, fallback=True)
    assert loaded["path"] == first and loaded["epoch"] == 0
    assert _tree(manager.root) == before  # nothing deleted or rewritten because of it


@pytest.mark.parametrize(
    ("damage", "reason"),
    [("deleted manifest", "no manifest.json"), ("garbled manifest", "garbled")],
)
def test_checkpoint_without_valid_manifest_is_invisible_and_named_when_passed_over(
    manager: CheckpointManager, save_many: Any, damage: str, reason: str
) -> None:
    first, second = save_many(manager, [0.5, 0.4])
    DAMAGE[damage][0](second)
    assert [c.path for c in manager.list_checkpoints()] == [first]
    with pytest.warns(RuntimeWarning, match=f"passing over newer {second.name} .*{reason}"):
        assert manager.load("last")["path"] == first
    assert manager.load(first)["path"] == first  # an explicit path passes over nothing


def test_corrupted_last_without_alternative(manager: CheckpointManager, save_many: Any) -> None:
    (only,) = save_many(manager, [0.5])
    _flip_byte(only)
    with pytest.raises(CheckpointCorruptedError, match="no valid alternative") as info:
        manager.load("last", fallback=True)
    assert info.value.alternative is None


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_without_running(
    manager: CheckpointManager, save_many: Any, tmp_path: Path
) -> None:
    (ckpt,) = save_many(manager, [0.5])
    marker = tmp_path / "pwned"
    torch.save({"model_state_dict": _Evil(marker)}, ckpt / "state.pt")
    manifest = json.loads((ckpt / MANIFEST_NAME).read_text())
    sha, size = hash_file(ckpt / "state.pt")
    manifest["files"]["state.pt"].update(sha256=sha, size=size)  # hashes match: attacker-made
    (ckpt / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(UnsafeCheckpointError, match="allow-list") as info:
        manager.load(ckpt)
    assert not marker.exists()
    message = str(info.value)  # names the blocked global, never advises weights_only=False
    assert "the global getattr" in message  # how the pickle reaches Path.touch
    assert "weights_only" not in message and "ALLOWED_GLOBALS" in message
    # and the plain-pickle route really would have run it
    torch.load(ckpt / "state.pt", weights_only=False)
    assert marker.exists()


def test_verify_on_load_false_still_checks_size(tmp_path: Path, save_many: Any) -> None:
    manager = CheckpointManager(tmp_path, verify_on_load=False)
    (ckpt,) = save_many(manager, [0.5])
    _truncate(ckpt)
    with pytest.raises(CheckpointCorruptedError, match="truncated"):
        manager.load(ckpt)


def test_load_of_missing_path_is_not_found(manager: CheckpointManager) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        manager.load(manager.root / "ckpt-000009-epoch0001-step000001")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        manager.load("last")
    assert os.listdir(manager.root) is not None
