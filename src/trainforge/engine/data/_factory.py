"""``DataLoaderFactory``: reproducible, resumable DataLoaders from plain arguments.

Every loader gets its own seeded ``torch.Generator`` (so creating an iterator never
draws from the global RNG, which would shift dropout masks after a resume), a
:class:`ResumableSampler` whose state goes into checkpoints, and per-worker seeding of
python / numpy from torch's worker seed.
"""

from __future__ import annotations

import random
from collections.abc import Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainforge.engine._task import TaskSpec
from trainforge.engine.data._batched import batched_view
from trainforge.engine.data._collators import CollatorRegistry, collate_columns
from trainforge.engine.data._sampler import ResumableSampler
from trainforge.engine.data._stream import StreamLoader
from trainforge.errors import ConfigError

__all__ = ["DataLoaderFactory", "seed_worker"]


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed python and numpy from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32  # torch sets base_seed + worker_id per worker
    random.seed(seed)
    np.random.seed(seed)


class DataLoaderFactory:
    """Builds DataLoaders with a resumable sampler, a collator and seeded randomness."""

    @staticmethod
    def collator(
        task_spec: TaskSpec | None = None,
        collator_name: str | None = None,
        collator_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """The collator a name (or else the task's modality) selects."""
        return CollatorRegistry.get_collator(
            collator_name or task_spec or "default", **(collator_kwargs or {})
        )

    @classmethod
    def stream(
        cls,
        dataset: IterableDataset[Any],
        batch_size: int,
        task_spec: TaskSpec | None = None,
        collator_name: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        random_seed: int = 0,
        *,
        collator_kwargs: dict[str, Any] | None = None,
    ) -> StreamLoader:
        """A :class:`StreamLoader` over an ``IterableDataset`` (its own order; no sampler).

        Examples:
            >>> class Count(IterableDataset):
            ...     def __iter__(self):
            ...         return iter(torch.arange(5.0))
            >>> [b.tolist() for b in DataLoaderFactory.stream(Count(), batch_size=2)]
            [[0.0, 1.0], [2.0, 3.0], [4.0]]
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", key="data.batch_size")
        kwargs: dict[str, Any] = {"worker_init_fn": seed_worker} if num_workers > 0 else {}
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=cls.collator(task_spec, collator_name, collator_kwargs),
            num_workers=num_workers,
            pin_memory=pin_memory and torch.cuda.is_available(),
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(random_seed),
            **kwargs,
        )
        return StreamLoader(loader)

    @classmethod
    def create(
        cls,
        dataset: Dataset[Any],
        batch_size: int,
        shuffle: bool = True,
        task_spec: TaskSpec | None = None,
        collator_name: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = False,
        random_seed: int = 0,
        sampler_state: dict[str, Any] | None = None,
        *,
        prefetch_factor: int | None = None,
        collator_kwargs: dict[str, Any] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> DataLoader[Any]:
        """Create a DataLoader whose order depends only on ``random_seed`` and the epoch.

        Args:
            dataset: A map-style dataset (``__len__`` + ``__getitem__``).
            batch_size: Samples per batch.
            shuffle: Random order per epoch (seeded); False keeps dataset order.
            task_spec: Picks the collator from its modality when ``collator_name`` is None.
            collator_name: A name from ``CollatorRegistry`` (overrides ``task_spec``).
            num_workers: Worker processes (0: load in the main process).
            pin_memory: Pin host memory; honoured only when CUDA is available.
            drop_last: Drop the last incomplete batch.
            random_seed: Seed of the sampler and of the loader's generator.
            sampler_state: ``loader.sampler.state_dict()`` from a checkpoint: the first
                iteration resumes at the next unseen sample.
            prefetch_factor: Batches prefetched per worker (ignored without workers).
            collator_kwargs: Extra arguments for the collator factory.
            num_replicas: Data-parallel processes; each loads its own share of every epoch.
            rank: This process's index among ``num_replicas``.

        Returns:
            A DataLoader; its ``sampler`` is the :class:`ResumableSampler` to checkpoint.

        Raises:
            ConfigError: batch_size < 1, or ``drop_last`` with a dataset smaller than one
                batch (every batch would be dropped).

        Examples:
            >>> from torch.utils.data import TensorDataset
            >>> data = TensorDataset(torch.arange(10.0), torch.arange(10))
            >>> loader = DataLoaderFactory.create(data, batch_size=4, random_seed=1)
            >>> [len(x) for x, _ in loader]
            [4, 4, 2]
        """
        if isinstance(dataset, IterableDataset) or not isinstance(dataset, Sized):
            raise TypeError(
                "DataLoaderFactory needs a map-style dataset with __len__ and __getitem__ "
                "(a resumable order needs to know the dataset size)"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", key="data.batch_size")
        if drop_last and len(dataset) < batch_size:
            raise ConfigError(
                f"data.batch_size={batch_size} is larger than the dataset ({len(dataset)} "
                "samples) and data.drop_last=true drops every batch",
                key="data.batch_size",
                hint="lower data.batch_size or set data.drop_last=false",
            )
        sampler = ResumableSampler(
            dataset, shuffle=shuffle, seed=random_seed, num_replicas=num_replicas, rank=rank
        )
        if sampler_state is not None:
            sampler.load_state_dict(sampler_state)
        collate_fn = cls.collator(task_spec, collator_name, collator_kwargs)
        if collate_fn is collate_columns and num_workers == 0:
            # in-memory tensors: one gather per column and batch instead of per sample
            dataset = batched_view(dataset)
        kwargs: dict[str, Any] = {}
        if num_workers > 0:
            # DataLoader rejects prefetch_factor without workers, hence only here
            if prefetch_factor is not None:
                kwargs["prefetch_factor"] = prefetch_factor
            kwargs["worker_init_fn"] = seed_worker
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory and torch.cuda.is_available(),
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(random_seed),
            **kwargs,
        )
