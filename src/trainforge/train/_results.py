"""``TrainingResults``: what ``Trainer.train`` returns, built in one place for both drivers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrainingResults"]


@dataclass
class TrainingResults:
    """What ``Trainer.train`` returns.

    Attributes are also readable as items (``results["best_epoch"]``), and ``"key" in
    results`` tells whether one exists.

    Attributes:
        run_id: The run folder's name.
        run_dir: The run folder.
        metrics_summary: One row per epoch: ``epoch``, ``train/loss`` (the epoch's mean),
            the validation metrics, ``system/epoch_time_s`` and ``system/throughput``.
        best_epoch: The epoch with the best ``monitor`` value (ties: the newer).
        best_metric: That value.
        monitor: The metric that ranks epochs (``checkpoint.monitor``).
        final_loss: The last epoch's mean training loss.
        checkpoint_path: The newest checkpoint written.
        best_checkpoint_path: The best checkpoint kept by retention.
        training_time: Seconds from the first step to the end.
        global_step: Optimizer steps taken.
        epochs_completed: Epochs trained to their end.
        export_path: The export bundle written at the end (``export.bundle=true``).
    """

    run_id: str
    run_dir: Path
    metrics_summary: pd.DataFrame
    best_epoch: int | None
    best_metric: float | None
    monitor: str
    final_loss: float
    checkpoint_path: Path | None
    best_checkpoint_path: Path | None
    training_time: float
    global_step: int
    epochs_completed: int
    export_path: Path | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            names = ", ".join(f.name for f in fields(self))
            raise KeyError(f"{key!r} is not a training result; results have {names}")
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in {f.name for f in fields(self)}

    def keys(self) -> Iterator[str]:
        """The names of the results."""
        return iter(f.name for f in fields(self))
