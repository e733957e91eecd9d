"""Format migration (a format-1 fixture) and Lightning checkpoint import/inspection."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    CheckpointManager,
    inspect_lightning_checkpoint,
)
from trainforge.hooks import HookEvent, HookManager


def write_v1_checkpoint(root: Path, model: torch.nn.Module, optimizer: Any) -> Path:
    """A checkpoint exactly as format 1 laid it out: one pickle, a flat manifest."""
    directory = root / "ckpt-000001-epoch0003-step000300"
    directory.mkdir(parents=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None,
        "extra": {"note": "v1"},
    }
    torch.save(payload, directory / "checkpoint.pt")
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
    return directory


def test_v1_checkpoint_lists_and_loads_through_migration(
    tmp_path: Path, make_training: Any
) -> None:
    model, optimizer, _ = make_training()
    path = write_v1_checkpoint(tmp_path, model, optimizer)
    manager = CheckpointManager(tmp_path, monitor=None)
    (listed,) = manager.list_checkpoints()
    assert listed.format_version == 1 and listed.epoch == 3 and listed.global_step == 300
    loaded = manager.load("last")
    assert loaded["epoch"] == 3 and loaded["metrics"] == {"val_loss": 0.42}
    assert loaded["custom_state"] == {"note": "v1"}
    assert torch.equal(loaded["model_state_dict"]["0.weight"], model.state_dict()["0.weight"])
    assert "model" not in loaded
    assert json.loads((path / MANIFEST_NAME).read_text())["version"] == 1  # untouched on disk


def test_migrate_rewrites_on_disk(tmp_path: Path, make_training: Any) -> None:
    model, optimizer, _ = make_training()
    path = write_v1_checkpoint(tmp_path, model, optimizer)
    hooks = HookManager()
    events: list[dict] = []
    hooks.register(HookEvent.ON_MIGRATION, lambda ctx: events.append(ctx.data))
    manager = CheckpointManager(tmp_path, monitor=None, hooks=hooks)

    assert manager.migrate(path) == path
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert sorted(manifest["files"]) == ["state.pt"]
    assert manifest["metadata"]["migrated_from"] == 1
    assert events == [{"path": path, "from_version": 1, "to_version": FORMAT_VERSION}]
    loaded = manager.load(path)
    assert loaded["custom_state"] == {"note": "v1"} and loaded["global_step"] == 300
    assert manager.migrate(path) is None  # already current
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".trash")] == []


def test_newer_format_is_refused_clearly(
    tmp_path: Path, manager: CheckpointManager, save_many: Any
) -> None:
    (path,) = save_many(manager, [0.5])
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="newer than this trainforge supports"):
        manager.load(path)


@pytest.fixture(scope="module")
def lightning_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``.ckpt`` from a 2-step ``lightning.Trainer`` fit of a tiny module."""
    import lightning as pl

    class Tiny(pl.LightningModule):
        def __init__(self, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Linear(hidden, 1))

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.model(x), y)

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1)]

    root = tmp_path_factory.mktemp("lightning")
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randn(8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and loggers
        trainer = pl.Trainer(
            max_steps=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
        path = root / "tiny.ckpt"
        trainer.save_checkpoint(path)
    return path


@pytest.mark.slow
def test_lightning_checkpoint_inspect_and_import(lightning_ckpt: Path, tmp_path: Path) -> None:
    info = inspect_lightning_checkpoint(lightning_ckpt)
    assert info["kind"] == "lightning" and info["global_step"] == 2
    assert info["state_dict_keys"] == [
        "model.0.bias",
        "model.0.weight",
        "model.1.bias",
        "model.1.weight",
    ]
    assert info["optimizers"] == 1 and info["hyper_parameters"] == ["hidden"]

    manager = CheckpointManager(tmp_path / "imported", monitor=None)
    path = manager.import_lightning(lightning_ckpt, strip_prefix="model.")
    loaded = manager.load(path)
    target = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    target.load_state_dict(loaded["model_state_dict"])
    assert loaded["global_step"] == 2
    assert loaded["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(
        0.01
    )  # one epoch, StepLR(1)
    assert loaded["config"] == {"hidden": 8}
    assert loaded["custom_state"]["lightning"]["version"] == info["lightning_version"]
