"""``UniversalDataModule``: trainforge's data module as a ``LightningDataModule``.

The loaders, the sampling and the position come from
:class:`~trainforge.engine.data.DataModule` (what the plain driver uses); this subclass adds
what a Lightning fit needs: each data-parallel rank loads its own share, and the position
inside an epoch comes from Lightning's loop progress.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn

from trainforge.engine.data import DataModule, sample_count
from trainforge.lightning._callbacks import epoch_batches, running_epoch

__all__ = ["UniversalDataModule", "sample_count"]


class UniversalDataModule(DataModule, LightningDataModule):
    """Seeded, resumable loaders for a train and a validation dataset, for a Lightning fit.

    Takes the arguments of :class:`~trainforge.engine.data.DataModule`. In a data-parallel
    fit (``trainer.world_size > 1``) each process loads its own share of every epoch (see
    :class:`~trainforge.engine.ResumableSampler`); create the ``lightning.Trainer`` with
    ``use_distributed_sampler=False`` so that Lightning does not split the data a second
    time.

    Examples:
        >>> import torch
        >>> data = torch.utils.data.TensorDataset(torch.zeros(10, 2), torch.zeros(10))
        >>> module = UniversalDataModule(data, data, batch_size=4)
        >>> len(module.train_dataloader())
        3
    """

    def _replicas(self) -> tuple[int, int]:
        """(processes, this process's rank) of the attached trainer's strategy."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Lightning Trainer
            return 1, 0
        if trainer is None:
            return 1, 0
        world = int(trainer.world_size)
        connector = getattr(trainer, "_accelerator_connector", None)
        if world > 1 and getattr(connector, "use_distributed_sampler", False):
            raise ValueError(
                "UniversalDataModule splits the data across processes itself; create the "
                "lightning.Trainer with use_distributed_sampler=False, or Lightning splits "
                "every process's share again"
            )
        return world, int(trainer.global_rank)

    def _fitting_trainer(self) -> Any:
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Lightning Trainer
            return None
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return None
        return trainer

    def _fit_progress(self) -> tuple[int, int, bool] | None:
        """(epoch, training batches processed in it, whether they are all done), in a fit."""
        trainer = self._fitting_trainer()
        if trainer is None:
            return None
        processed, finished = epoch_batches(trainer)
        return running_epoch(trainer), processed, finished
