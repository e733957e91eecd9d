"""The paths users pass (pointers, payload files, directories) resolve the same way
everywhere; inspect lists tensors safely; ``verify --deep`` catches what hashes cannot."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import (
    MANIFEST_NAME,
    CheckpointManager,
    locate_checkpoint,
    resolve_checkpoint,
)
from trainforge.checkpoint._integrity import hash_file
from trainforge.cli import main
from trainforge.errors import CheckpointNotFoundError, ResumeError
from trainforge.train._resume import find_resume_checkpoint


@pytest.fixture
def run(tmp_path: Path, save_many: Any) -> tuple[Path, list[Path]]:
    """``outputs/run-1/checkpoints`` with three checkpoints; the middle one is best."""
    root = tmp_path / "outputs" / "run-1" / "checkpoints"
    manager = CheckpointManager(root, keep_best_k=9, keep_last_n=9)
    return root, save_many(manager, [0.5, 0.1, 0.3], config={"optim": {"name": "adamw"}})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("{root}", ("{root}", "last")),
        ("{root}/last", ("{root}", "last")),
        ("{root}/best", ("{root}", "best")),
        ("{ckpt}", ("{root}", "{name}")),
        ("{ckpt}/manifest.json", ("{root}", "{name}")),
        ("{ckpt}/state.pt", ("{root}", "{name}")),
    ],
)
def test_resume_targets_resolve_to_a_directory_and_a_name(
    run: tuple[Path, list[Path]], given: str, expected: tuple[str, str]
) -> None:
    root, paths = run
    values = {"root": root, "ckpt": paths[0], "name": paths[0].name}
    want = (Path(expected[0].format(**values)), expected[1].format(**values))
    assert resolve_checkpoint(given.format(**values)) == want
    # --resume takes the same paths (a pointer or payload file was NotADirectoryError)
    assert find_resume_checkpoint(given.format(**values), root.parents[1]) == want
    directory, name = want
    result = CheckpointManager(directory).resume(name, {"optim": {"name": "adamw"}})
    assert result.checkpoint["path"] == locate_checkpoint(given.format(**values))


def test_pointers_locate_the_checkpoint_they_mean(run: tuple[Path, list[Path]]) -> None:
    root, paths = run
    assert locate_checkpoint(root / "best") == paths[1]
    assert locate_checkpoint(root / "last") == locate_checkpoint(root) == paths[2]


@pytest.mark.parametrize("kind", ["missing", "empty dir", "foreign file"])
def test_what_is_not_a_checkpoint_is_named(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "thing"
    if kind == "empty dir":
        target.mkdir()
    elif kind == "foreign file":
        target.write_text("hello")
    with pytest.raises(CheckpointNotFoundError, match=str(target)):
        resolve_checkpoint(target)


def test_allowed_change_that_names_no_key_is_refused_with_a_guess(
    run: tuple[Path, list[Path]],
) -> None:
    root, _ = run
    manager = CheckpointManager(root)
    changed = {"optim": {"name": "sgd"}}
    with pytest.raises(ResumeError, match="'optim.nme' names no key.*did you mean 'optim.name'"):
        manager.resume("last", changed, allow_changes=["optim.nme"])
    with pytest.raises(ResumeError, match="names no key"):
        manager.resume("last", changed, mode="warn", allow_changes=["optim.nme"])
    result = manager.resume("last", changed, allow_changes=["optim"])  # a section is a key
    assert [c.key for c in result.allowed_changes] == ["optim.name"]


def test_inspect_a_pointer_lists_tensors(
    run: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, paths = run
    assert main(["ckpt", "inspect", str(root / "best"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(paths[1]) and info["metadata"]["monitor_value"] == 0.1
    tensors = {t["name"]: (t["shape"], t["dtype"]) for t in info["tensors"]}
    assert tensors["model_state_dict/0.weight"] == ([8, 4], "float32")
    assert tensors["optimizer_state_dict/state/0/exp_avg"] == ([8, 4], "float32")
    assert main(["ckpt", "inspect", str(root / "best")]) == 0
    assert "model_state_dict/2.bias" in capsys.readouterr().out


def test_inspect_a_lightning_file_lists_tensors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = torch.nn.Linear(3, 2)
    ckpt = tmp_path / "epoch=0.ckpt"
    torch.save(
        {
            "epoch": 0,
            "global_step": 4,
            "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
        },
        ckpt,
    )
    assert main(["ckpt", "inspect", str(ckpt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "lightning"
    assert {t["name"]: t["shape"] for t in info["tensors"]} == {
        "state_dict/net.weight": [2, 3],
        "state_dict/net.bias": [2],
    }


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def test_deep_verify_and_inspect_refuse_what_load_refuses(
    run: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, paths = run
    ckpt, marker = paths[0], tmp_path / "pwned"
    torch.save({"model_state_dict": _Evil(marker)}, ckpt / "state.pt")
    manifest = json.loads((ckpt / MANIFEST_NAME).read_text())
    sha, size = hash_file(ckpt / "state.pt")
    manifest["files"]["state.pt"].update(sha256=sha, size=size)  # hashes match
    (ckpt / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(["ckpt", "verify", str(ckpt)]) == 0  # hashes cannot see it
    capsys.readouterr()
    assert main(["ckpt", "verify", str(ckpt), "--deep", "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert not report["ok"] and "the global getattr" in report["problem"]
    assert main(["ckpt", "inspect", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert "refusing to load" in err and "ALLOWED_GLOBALS" in err and "Traceback" not in err
    assert not marker.exists()
