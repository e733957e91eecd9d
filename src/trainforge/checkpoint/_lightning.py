"""Inspect and import checkpoints written by Lightning (``.ckpt`` files).

A Lightning checkpoint is one ``torch.save`` dict: ``epoch``, ``global_step``,
``state_dict``, ``optimizer_states``, ``lr_schedulers``, ``callbacks``,
``pytorch-lightning_version`` and optionally ``hyper_parameters``. It is read with the
same weights-only loader as our own files; importing maps it to trainforge's payload keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainforge.errors import CheckpointError

__all__ = ["inspect_lightning_checkpoint", "lightning_to_state", "read_lightning_checkpoint"]

_REQUIRED = ("state_dict", "epoch", "global_step")


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning ``.ckpt`` with the weights-only unpickler (CPU)."""
    from trainforge.checkpoint.storage.torch import safe_torch_load

    data = safe_torch_load(str(path), map_location="cpu")
    if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint: expected keys {list(_REQUIRED)}, got {keys}",
            path=path,
        )
    return data


def inspect_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """Summary of a Lightning checkpoint: versions, progress, parameters, optimizers."""
    data = read_lightning_checkpoint(path)
    state = data["state_dict"]
    return {
        "path": str(path),
        "kind": "lightning",
        "lightning_version": data.get("pytorch-lightning_version"),
        "epoch": int(data["epoch"]),
        "global_step": int(data["global_step"]),
        "parameters": int(sum(getattr(t, "numel", lambda: 0)() for t in state.values())),
        "state_dict_keys": sorted(state),
        "optimizers": len(data.get("optimizer_states") or []),
        "lr_schedulers": len(data.get("lr_schedulers") or []),
        "callbacks": sorted(str(k) for k in (data.get("callbacks") or {})),
        "hyper_parameters": sorted(data.get("hyper_parameters") or {}),
    }


def lightning_to_state(data: dict[str, Any], *, strip_prefix: str = "") -> dict[str, Any]:
    """trainforge payload (``model_state_dict``, ...) from a Lightning checkpoint dict.

    Args:
        data: The loaded Lightning checkpoint.
        strip_prefix: Removed from state-dict keys (``"model."`` when the LightningModule
            wraps the network as ``self.model``).
    """
    model = {
        (k[len(strip_prefix) :] if strip_prefix and k.startswith(strip_prefix) else k): v
        for k, v in data["state_dict"].items()
    }
    optimizers = data.get("optimizer_states") or []
    schedulers = data.get("lr_schedulers") or []
    return {
        "model_state_dict": model,
        "optimizer_state_dict": optimizers[0] if optimizers else None,
        "scheduler_state_dict": schedulers[0] if schedulers else None,
        "custom_state": {
            "lightning": {
                "callbacks": data.get("callbacks") or {},
                "loops": data.get("loops"),
                "hyper_parameters": dict(data.get("hyper_parameters") or {}),
                "version": data.get("pytorch-lightning_version"),
                "extra_optimizer_states": optimizers[1:],
                "extra_lr_schedulers": schedulers[1:],
            }
        },
    }
