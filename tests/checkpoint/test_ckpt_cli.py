"""``trainforge ckpt ...`` through the real CLI entry point."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import MANIFEST_NAME, CheckpointManager
from trainforge.cli import main


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich folds long cells to the terminal width; keep names on one line."""
    monkeypatch.setenv("COLUMNS", "300")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def filled(tmp_path: Path, save_many: Any) -> tuple[Path, list[Path]]:
    manager = CheckpointManager(tmp_path / "ckpts", keep_best_k=100, keep_last_n=100)
    return manager.root, save_many(manager, [0.5, 0.2, 0.4, 0.3])


def test_list_json_and_table(
    capsys: pytest.CaptureFixture[str], filled: tuple[Path, list[Path]]
) -> None:
    root, paths = filled
    code, out, _ = run(capsys, "ckpt", "list", str(root), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == [p.name for p in reversed(paths)]
    assert [r["is_best"] for r in rows] == [False, False, True, False]
    assert rows[0]["is_last"] and rows[0]["metrics"] == {"val_loss": 0.3}
    code, out, _ = run(capsys, "ckpt", "list", str(root))
    assert code == 0 and paths[1].name in out and "best" in out


def test_list_missing_directory_is_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "ckpt", "list", str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in err and "Traceback" not in err


def test_inspect_checkpoint(
    capsys: pytest.CaptureFixture[str], filled: tuple[Path, list[Path]]
) -> None:
    _, paths = filled
    code, out, _ = run(capsys, "ckpt", "inspect", str(paths[0]), "--json")
    data = json.loads(out)
    assert code == 0 and data["format_version"] == 2 and list(data["files"]) == ["state.pt"]
    assert data["metadata"]["epoch"] == 0 and "rng_state" not in data["metadata"]
    code, out, _ = run(capsys, "ckpt", "inspect", str(paths[0]))
    assert code == 0 and "state.pt" in out and "storage" in out


def _lightning_dict() -> dict[str, Any]:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return {
        "epoch": 2,
        "global_step": 40,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "callbacks": {},
        "loops": {},
        "hyper_parameters": {"lr": 0.1},
    }


def test_inspect_and_import_lightning_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ckpt = tmp_path / "epoch=2.ckpt"
    torch.save(_lightning_dict(), ckpt)
    code, out, _ = run(capsys, "ckpt", "inspect", str(ckpt), "--json")
    info = json.loads(out)
    assert (
        code == 0 and info["epoch"] == 2 and info["state_dict_keys"] == ["net.bias", "net.weight"]
    )
    code, out, _ = run(
        capsys, "ckpt", "migrate", str(ckpt), "--into", str(tmp_path / "tf"), "--json"
    )
    assert code == 0
    imported = Path(json.loads(out)["imported"])
    loaded = CheckpointManager(tmp_path / "tf", monitor=None).load(imported)
    assert loaded["global_step"] == 40 and "net.weight" in loaded["model_state_dict"]
    code, _, err = run(capsys, "ckpt", "migrate", str(ckpt))
    assert code == 1 and "--into" in err


def test_verify_ok_and_bad(
    capsys: pytest.CaptureFixture[str], filled: tuple[Path, list[Path]]
) -> None:
    root, paths = filled
    code, out, _ = run(capsys, "ckpt", "verify", str(root), "--json")
    assert code == 0 and all(r["ok"] for r in json.loads(out))
    payload = paths[2] / "state.pt"
    data = bytearray(payload.read_bytes())
    data[-100] ^= 1
    payload.write_bytes(bytes(data))
    code, out, err = run(capsys, "ckpt", "verify", str(root))
    assert code == 1
    assert str(payload) in err and "BAD" in out
    code, _, err = run(capsys, "ckpt", "verify", str(paths[2]))
    assert code == 1 and str(payload) in err
    code, _, _ = run(capsys, "ckpt", "verify", str(paths[1]))
    assert code == 0


def test_migrate_directory_of_v1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    directory = tmp_path / "ckpt-000001-epoch0001-step000010"
    directory.mkdir()
    torch.save(
        {"model": {"w": torch.ones(2)}, "optimizer": None, "scheduler": None, "extra": None},
        directory / "checkpoint.pt",
    )
    blob = (directory / "checkpoint.pt").read_bytes()
    manifest = {
        "version": 1,
        "file": "checkpoint.pt",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "epoch": 1,
        "step": 10,
        "metrics": {},
        "created": 0,
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    code, out, _ = run(capsys, "ckpt", "migrate", str(tmp_path), "--json")
    assert code == 0 and json.loads(out) == {"migrated": [str(directory)], "already_current": 0}
    assert json.loads((directory / MANIFEST_NAME).read_text())["format_version"] == 2
    code, out, _ = run(capsys, "ckpt", "migrate", str(directory), "--json")
    assert json.loads(out) == {"migrated": [], "already_current": 1}


def test_prune(capsys: pytest.CaptureFixture[str], filled: tuple[Path, list[Path]]) -> None:
    root, paths = filled
    (paths[0] / MANIFEST_NAME).unlink()  # an incomplete checkpoint
    (root / ".tmp-epoch0009-step000009-deadbeef0000").mkdir()  # a dead writer's leftovers
    args = ["ckpt", "prune", str(root), "--keep-last-n", "1", "--keep-best-k", "1", "--json"]
    code, out, _ = run(capsys, *args, "--dry-run")
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and report["incomplete"] == [paths[0].name]
    assert all(p.exists() for p in paths)
    code, out, _ = run(capsys, *args)
    report = json.loads(out)
    assert report["incomplete"] == [paths[0].name]
    assert report["leftovers"] == [".tmp-epoch0009-step000009-deadbeef0000"]
    assert report["retention"] == [paths[2].name]
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(("ckpt-", ".tmp"))) == [
        paths[1].name,
        paths[3].name,
    ]
