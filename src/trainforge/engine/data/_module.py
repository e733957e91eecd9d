"""``DataModule``: one data module for both loop drivers, free of any framework.

A thin layer over :class:`~trainforge.engine.data.DataLoaderFactory`: the plain driver
calls ``train_dataloader()`` / ``val_dataloader()`` itself, and the Lightning driver hands
its subclass (:class:`trainforge.lightning.UniversalDataModule`) to ``Trainer.fit``. Its
``state_dict`` is the training sampler's position, so a resumed run continues with the next
unseen sample.
"""

from __future__ import annotations

import math
from typing import Any

from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainforge.engine._task import TaskSpec
from trainforge.engine.data._factory import DataLoaderFactory
from trainforge.engine.data._stream import StreamLoader

__all__ = ["DataModule", "ResumingLoader", "sample_count"]


def sample_count(data: Any) -> int | None:
    """Samples in a dataset or a DataLoader's dataset (None for a stream without a length)."""
    if isinstance(data, DataLoader):
        data = data.dataset
    try:
        return len(data)
    except TypeError:
        return None


class ResumingLoader(DataLoader):
    """The training loader: a whole epoch long, and stateful for a framework's loops.

    ``len`` is the full epoch even when the sampler resumes part-way: Lightning counts an
    epoch's batches from it and restores its own count of the batches already done.
    Lightning saves ``state_dict()`` with its loop state and calls ``load_state_dict``
    before the first iteration of a resumed fit.
    """

    @staticmethod
    def fit_progress() -> tuple[int, int, bool] | None:
        """(epoch, batches processed, epoch done) of the fit; replaced by the data module."""
        return None

    def __len__(self) -> int:
        samples = self.sampler.num_samples  # type: ignore[attr-defined]
        size = int(self.batch_size or 1)
        return samples // size if self.drop_last else math.ceil(samples / size)

    def state_dict(self) -> dict[str, Any]:
        """Where the next unseen sample is: the batches the fit has processed, not fetched.

        Lightning fetches one batch ahead, so the sampler's own position is one batch past
        what training consumed; an epoch whose batches are all done resumes at the next
        epoch's beginning.
        """
        sampler = self.sampler
        progress = self.fit_progress()
        if progress is None:
            return sampler.state_dict()  # type: ignore[attr-defined]
        epoch, batches, finished = progress
        size = int(self.batch_size or 1)
        consumed = 0 if finished else min(batches * size, sampler.num_samples)  # type: ignore[attr-defined]
        state = sampler.state_dict(consumed=consumed)  # type: ignore[attr-defined]
        state["epoch"] = epoch + 1 if finished else epoch
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Start the next iteration at the saved position."""
        if state_dict:
            self.sampler.load_state_dict(state_dict)  # type: ignore[attr-defined]


class DataModule:
    """Seeded, resumable loaders for a train and a validation dataset, without a framework.

    Args:
        train_dataset: Items are dicts (``inputs``, ``labels``, ...) or ``(x, y)`` tuples.
            A ``DataLoader`` is used as it is and an ``IterableDataset`` in its own order,
            both through a :class:`~trainforge.engine.StreamLoader` (resume skips the
            batches done; see there what that restores).
        val_dataset: The validation split (never shuffled); a ``DataLoader`` as it is.
        batch_size: Training batch size.
        val_batch_size: Validation batch size (``batch_size`` when None).
        task_spec: Chooses the collator when ``collator`` is None.
        collator: A registered collator name (``default``, ``text``, ``vision``).
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory (only with CUDA).
        drop_last: Drop the last incomplete training batch.
        shuffle: Shuffle the training data every epoch.
        seed: Seed of the sampler and of the loaders' generators.

    The plain driver calls ``train_dataloader()`` / ``val_dataloader()`` itself;
    :class:`trainforge.lightning.UniversalDataModule` is the same module for a Lightning fit
    (one process's share of the data per rank, the position saved with Lightning's loops).

    Examples:
        >>> import torch
        >>> data = torch.utils.data.TensorDataset(torch.zeros(10, 2), torch.zeros(10))
        >>> module = DataModule(data, data, batch_size=4)
        >>> len(module.train_dataloader())
        3
    """

    def __init__(
        self,
        train_dataset: Dataset[Any] | DataLoader[Any],
        val_dataset: Dataset[Any] | DataLoader[Any] | None = None,
        *,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        task_spec: TaskSpec | None = None,
        collator: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()  # the next class of a subclass's bases (LightningDataModule)
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.task_spec = task_spec
        self.collator = collator
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = seed
        self._train_loader: DataLoader[Any] | StreamLoader | None = None
        self._train_replicas = (1, 0)
        self._pending_state: dict[str, Any] | None = None

    def _replicas(self) -> tuple[int, int]:
        """(processes, this process's rank) sharing the training data: one here."""
        return 1, 0

    def _loader(self, dataset: Dataset[Any], *, train: bool) -> DataLoader[Any]:
        replicas, rank = self._replicas()
        return DataLoaderFactory.create(
            dataset,
            self.batch_size if train else self.val_batch_size,
            shuffle=self.shuffle and train,
            task_spec=self.task_spec,
            collator_name=self.collator,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last and train,
            random_seed=self.seed,
            sampler_state=self._pending_state if train else None,
            num_replicas=replicas,
            rank=rank,
        )

    def _stream(self, data: Any, *, train: bool) -> StreamLoader:
        if isinstance(data, DataLoader):
            return StreamLoader(data)
        return DataLoaderFactory.stream(
            data,
            self.batch_size if train else self.val_batch_size,
            task_spec=self.task_spec,
            collator_name=self.collator,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last and train,
            random_seed=self.seed,
        )

    @property
    def streams(self) -> bool:
        """True when the training data is a DataLoader or an IterableDataset."""
        return isinstance(self.train_dataset, (DataLoader, IterableDataset))

    def train_dataloader(self) -> DataLoader[Any] | StreamLoader:
        """The training loader (one per process: its sampler carries the position)."""
        if self.streams:
            if self._train_loader is None:
                stream = self._stream(self.train_dataset, train=True)
                stream.fit_progress = self._fit_progress
                if self._pending_state:
                    stream.load_state_dict(self._pending_state)
                self._train_loader, self._pending_state = stream, None
            return self._train_loader
        if self._train_loader is None or self._train_replicas != self._replicas():
            loader = self._loader(self.train_dataset, train=True)  # type: ignore[arg-type]
            loader.__class__ = ResumingLoader
            loader.fit_progress = self._fit_progress
            self._train_loader = loader
            self._train_replicas = self._replicas()
            self._pending_state = None
        return self._train_loader

    def train_samples(self) -> int | None:
        """Training samples per epoch (None for a stream without a length)."""
        return sample_count(self.train_dataset)

    def val_dataloader(self) -> Any:
        """The validation loader (sequential order; split across data-parallel processes)."""
        if self.val_dataset is None:
            raise ValueError(f"{type(self).__name__} has no validation dataset")
        if isinstance(self.val_dataset, DataLoader):
            return self.val_dataset
        if isinstance(self.val_dataset, IterableDataset):
            return self._stream(self.val_dataset, train=False).loader
        return self._loader(self.val_dataset, train=False)

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's position (``{"epoch", "seed", "position"}``).

        Empty inside a framework's fit that tracks progress itself (Lightning): there the
        training loader is stateful and the framework saves its state with the loops.
        """
        if self._fit_progress() is not None:
            return {}
        if self._train_loader is None:
            return dict(self._pending_state or {})
        if isinstance(self._train_loader, StreamLoader):
            return self._train_loader.state_dict()
        return self._train_loader.sampler.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue at the saved position, from the next iteration of the training loader."""
        if not state_dict:
            return
        if isinstance(self._train_loader, StreamLoader):
            self._train_loader.load_state_dict(state_dict)
        elif self._train_loader is not None:
            self._train_loader.sampler.load_state_dict(state_dict)  # type: ignore[attr-defined]
        else:
            self._pending_state = dict(state_dict)

    def _fit_progress(self) -> tuple[int, int, bool] | None:
        """(epoch, training batches processed in it, all done) in a framework's fit; None here."""
        return None
