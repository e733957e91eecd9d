"""Save -> load round trips for every backend and codec, and RNG state restoration."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainforge.checkpoint import FORMAT_VERSION, MANIFEST_NAME, CheckpointManager
from trainforge.checkpoint._integrity import hash_file
from trainforge.records import ConfigRecord


@pytest.mark.parametrize("storage", ["torch", "safetensors"])
@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_round_trip(
    make_training: Any, tmp_path: Path, storage: str, compression: str | None
) -> None:
    manager = CheckpointManager(tmp_path, storage=storage, compression=compression)
    model, optimizer, scheduler = make_training()
    custom = {"ema": {1: torch.arange(3.0)}, "pair": (1, "a"), "flag": True, "none": None}
    path = manager.save(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        epoch=5,
        global_step=1000,
        metrics={"val_loss": 0.25, "val/acc": torch.tensor(0.5)},
        custom_state=custom,
        config={"optim": {"lr": 1e-3}, "model": {"name": "mlp"}},
        notes="first",
    )
    assert path.name == "ckpt-000001-epoch0005-step001000"

    loaded = manager.load(path)
    assert loaded["epoch"] == 5 and loaded["global_step"] == 1000
    assert loaded["metrics"] == {"val_loss": 0.25, "val/acc": 0.5}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model_state_dict"][key], value)
    fresh_model, fresh_opt, fresh_sched = make_training(seed=1)
    fresh_model.load_state_dict(loaded["model_state_dict"])
    fresh_opt.load_state_dict(loaded["optimizer_state_dict"])
    fresh_sched.load_state_dict(loaded["scheduler_state_dict"])
    assert fresh_opt.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    assert fresh_sched.state_dict() == scheduler.state_dict()
    assert loaded["custom_state"]["pair"] == (1, "a")
    assert torch.equal(loaded["custom_state"]["ema"][1], torch.arange(3.0))
    assert loaded["config"] == {"optim": {"lr": 1e-3}, "model": {"name": "mlp"}}
    assert len(loaded["config_hash"]) == 64

    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["storage"] == storage
    meta = manifest["metadata"]
    assert meta["monitor_value"] == 0.25 and meta["notes"] == "first"
    assert set(meta["versions"]) == {"trainforge", "torch", "python"}
    assert {"commit", "dirty"} <= set(meta["git"])
    for name, entry in manifest["files"].items():
        assert hash_file(path / name) == (entry["sha256"], entry["size"])
        assert entry["compression"] == compression or name.endswith(".json")


def test_safetensors_checkpoint_has_no_pickle(make_training: Any, tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, storage="safetensors")
    model, optimizer, _ = make_training()
    path = manager.save(
        model=model, optimizer=optimizer, epoch=0, global_step=1, metrics={"val_loss": 1.0}
    )
    names = sorted(p.name for p in path.iterdir())
    assert names == ["manifest.json", "state.json", "state.safetensors"]
    json.loads((path / "state.json").read_text())  # plain JSON, no pickle opcodes


def test_rng_round_trip(make_training: Any, manager: CheckpointManager) -> None:
    model, _, _ = make_training()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    manager.save(model=model, epoch=0, global_step=1, metrics={"val_loss": 1.0})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # training moves on
    manager.load("last", restore_rng=True)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2])


def test_load_without_rng_restore_leaves_generators_alone(
    make_training: Any, manager: CheckpointManager
) -> None:
    model, _, _ = make_training()
    manager.save(model=model, epoch=0, global_step=1, metrics={"val_loss": 1.0})
    torch.manual_seed(5)
    before = torch.get_rng_state()
    manager.load("last", restore_rng=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_config_record_with_provenance(make_training: Any, manager: CheckpointManager) -> None:
    record = ConfigRecord(
        {"optim": {"lr": 0.1}}, "abc", {"optim.lr": {"source": "cli", "tags": []}}
    )
    model, _, _ = make_training()
    manager.save(model=model, epoch=0, global_step=1, metrics={"val_loss": 1.0}, config=record)
    loaded = manager.load()
    assert loaded["config_hash"] == "abc"
    assert loaded["config_provenance"] == {"optim.lr": {"source": "cli", "tags": []}}


def test_missing_monitor_metric_names_it_and_the_keys(
    make_training: Any, manager: CheckpointManager
) -> None:
    model, _, _ = make_training()
    with pytest.raises(ValueError, match=r"'val_loss'.*\['train/loss', 'val/acc'\]"):
        manager.save(
            model=model, epoch=0, global_step=1, metrics={"train/loss": 1.0, "val/acc": 0.1}
        )
    assert manager.list_checkpoints() == []


def test_unknown_storage_and_compression_suggest_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="did you mean 'safetensors'"):
        CheckpointManager(tmp_path, storage="safetensor")
    with pytest.raises(KeyError, match="did you mean 'zstd'"):
        CheckpointManager(tmp_path, compression="zstdd")


def test_import_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, trainforge.checkpoint; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
