"""Evaluating a checkpoint on a data split, with the model and data its own config names.

Used by ``trainforge evaluate`` and by ``evaluate`` jobs. The checkpoint is verified on
load; its config (stored inside it) rebuilds the task, model and data exactly as training
saw them, so the split is the same split (same seed, same ``data.val_split``).
"""

from __future__ import annotations

from pathlib import Path

from trainforge.checkpoint import CheckpointManager, recorded_ranking, resolve_checkpoint
from trainforge.engine import ValidationLoop
from trainforge.errors import ConfigError
from trainforge.train import _build as build
from trainforge.train._weights import load_checkpoint_weights
from trainforge.zoo import task_metrics

__all__ = ["SPLITS", "evaluate_checkpoint"]

SPLITS = ("val", "train")


def evaluate_checkpoint(target: str | Path, *, split: str = "val") -> dict[str, float]:
    """Mean loss and task metrics of a checkpoint on ``split`` (``val`` or ``train``).

    Args:
        target: A checkpoint directory, a directory of checkpoints (its ``last``), or a
            ``last`` / ``best`` pointer.
        split: Which part of the config's data to evaluate on.

    Returns:
        ``{"<split>/loss": ..., "<split>/acc": ...}`` (the task's metrics).

    Raises:
        CheckpointNotFoundError: Nothing at ``target``.
        CheckpointCorruptedError: The checkpoint fails verification.
        CheckpointError: Its weights do not fit the model its config builds.
        ConfigError: Unknown split, or the split is empty (``data.val_split`` 0).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    directory, name = resolve_checkpoint(target)
    monitor, mode = recorded_ranking(directory)
    manager = CheckpointManager(directory, monitor=monitor or "val/loss", mode=mode or "min")
    checkpoint = manager.load(name, map_location="cpu", restore_rng=False)
    config = build.recorded_config(
        checkpoint["config"], checkpoint.get("config_provenance"), checkpoint["path"]
    )
    spec = build.task_spec_from_config(config)
    model = build.build_model_for(config, spec)
    load_checkpoint_weights(
        model, checkpoint["model_state_dict"], checkpoint["path"], config=config
    )
    train_data, val_data = build.build_datasets_for(config, spec)
    data = val_data if split == "val" else train_data
    if data is None or len(data) == 0:
        raise ConfigError(
            f"the checkpoint's config has no {split} data to evaluate on",
            key="data.val_split",
            hint="evaluate on split 'train', or train with data.val_split > 0",
        )
    datamodule = build.build_datamodule(config, train_data, val_data, spec)
    loader = datamodule.val_dataloader() if split == "val" else datamodule.train_dataloader()
    device = build.pick_device(config.trainer.accelerator)
    loop = ValidationLoop(
        model.to(device),
        build.build_loss(spec),
        metric_fn=lambda outputs, batch: task_metrics(spec, outputs, batch),
        device=device,
        prefix=split,
    )
    return loop.run_epoch(loader, int(checkpoint["epoch"])).metrics
