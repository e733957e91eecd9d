"""Loading a checkpoint's weights into a model, with a named error when they do not fit.

Used by export and evaluation (and their jobs): a run trained on a model object records
a config whose model is not that object, and a rebuilt model then does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from trainforge.checkpoint import compare_state_dicts
from trainforge.config import TrainingConfig
from trainforge.errors import CheckpointError

__all__ = ["load_checkpoint_weights"]


def load_checkpoint_weights(
    model: nn.Module,
    state: Mapping[str, Any],
    where: str | Path,
    *,
    config: TrainingConfig,
    given: bool = False,
) -> None:
    """Load a checkpoint's ``model_state_dict`` into ``model``; a named error if it does not fit.

    Args:
        model: The model built from the checkpoint's ``config`` or, with ``given``, the
            caller's own.
        state: The checkpoint's ``model_state_dict``.
        where: The checkpoint, for the message.
        config: The config the checkpoint recorded.
        given: ``model`` is the caller's (not built from ``config``).

    Raises:
        CheckpointError: Keys or shapes differ, each one listed (up to eight).
    """
    problems = compare_state_dicts(model.state_dict(), state)
    if not problems:
        model.load_state_dict(state)
        return
    listed = "".join(f"\n  - {problem}" for problem in problems[:8])
    if len(problems) > 8:
        listed += f"\n  ... and {len(problems) - 8} more"
    if given:
        what = f"the model passed ({type(model).__name__})"
        hint = "pass the model object the run trained, built with the same arguments"
    else:
        what = f"the model its config builds (model.name={config.model.name!r})"
        hint = (
            "a run trained on a model object, Trainer(model, config), records no recipe for "
            "it: name its class by import path (model.name=pkg.module:Class) so the config "
            "rebuilds it, or export it in Python (export.bundle=true exports it at the end "
            "of training; trainforge.production.create_export_bundle)"
        )
    raise CheckpointError(
        f"the weights in {where} do not fit {what}:{listed}", path=where, hint=hint
    )
