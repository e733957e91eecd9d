"""A sampler whose position is part of the checkpoint, for bit-exact mid-epoch resume.

The order of an epoch is a pure function of ``(seed, epoch)``; the state is three
integers. After ``load_state_dict`` iteration continues at the first index not yet
yielded, so a run killed mid-epoch sees exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    """Random (or sequential) order per epoch, resumable at any position.

    The permutation of epoch ``e`` comes from a private generator seeded with
    ``seed`` and ``e``; the global RNG is never touched. Completing an iteration moves to
    the next epoch; :meth:`set_epoch` with a different epoch starts that epoch at its
    beginning, with the same epoch it keeps a loaded position (so a resumed loop may call
    it). Each iteration starts at the position :meth:`load_state_dict` set, else at the
    epoch's beginning: an iterator abandoned part-way (a prefetching loader's, a
    ``limit_train_batches`` epoch's) does not move where the next one starts.

    ``position`` counts indices handed to the DataLoader. With ``num_workers=0`` that is
    exactly the samples consumed; with workers, the loader prefetches, so pass the
    consumed count to :meth:`state_dict` (``consumed=batches_done * batch_size``).

    With ``num_replicas > 1`` (data-parallel training) every rank computes the same
    epoch order and takes every ``num_replicas``-th index from ``rank`` on, after padding
    the order by repeating its beginning so that all ranks see the same number of
    samples (as ``DistributedSampler`` does); ``num_samples`` and ``position`` are then
    per rank, and every rank's state is the same three integers.

    Args:
        data_source: The dataset (only its length is used) or the length itself.
        shuffle: Random order per epoch; False keeps the dataset order.
        seed: Seed of the per-epoch permutation.
        num_replicas: Data-parallel processes sharing the dataset.
        rank: This process's index among them.

    Examples:
        >>> sampler = ResumableSampler(10, seed=3)
        >>> it = iter(sampler)
        >>> first = [next(it) for _ in range(4)]
        >>> state = sampler.state_dict()
        >>> resumed = ResumableSampler(10, seed=3)
        >>> resumed.load_state_dict(state)
        >>> list(resumed) == list(it)
        True
    """

    def __init__(
        self,
        data_source: Sized | int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.dataset_size = data_source if isinstance(data_source, int) else len(data_source)
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank {rank} of {num_replicas}")
        self.num_replicas = num_replicas
        self.rank = rank
        self.num_samples = math.ceil(self.dataset_size / num_replicas)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._position = 0
        self._start = 0
        self._live: Iterator[int] | None = None  # the running iteration's indices

    def order(self, epoch: int) -> list[int]:
        """This rank's index order in ``epoch`` (the whole order with one replica)."""
        if not self.shuffle:
            order = list(range(self.dataset_size))
        else:
            generator = torch.Generator().manual_seed((self.seed << 20) + epoch)
            order = torch.randperm(self.dataset_size, generator=generator).tolist()
        if self.num_replicas == 1:
            return order
        total = self.num_samples * self.num_replicas
        padded = (order * math.ceil(total / len(order)))[:total] if order else order
        return padded[self.rank : total : self.num_replicas]

    @property
    def position(self) -> int:
        """Indices of the current epoch handed out so far."""
        live = self._live
        if live is None:
            return self._position
        # a list iterator knows how many items it has left: no Python code runs per index
        return self.num_samples - operator.length_hint(live)

    @position.setter
    def position(self, value: int) -> None:
        self._position, self._live = value, None

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        # an iteration starts where load_state_dict put it, else at the epoch's beginning
        start, self._start = self._start, 0
        live = iter(order[start : self.num_samples])
        self._position, self._live = start, live
        yield from live
        self.epoch += 1
        self.position = 0

    def __len__(self) -> int:
        return self.num_samples - self._start

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch``; a different epoch than the current one starts at index 0."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = self._start = 0

    def state_dict(self, *, consumed: int | None = None) -> dict[str, Any]:
        """``{"epoch", "seed", "position"}``; ``consumed`` overrides the position."""
        position = self.position if consumed is None else consumed
        if not 0 <= position <= self.num_samples:
            raise ValueError(f"position must be in [0, {self.num_samples}], got {position}")
        state = {"epoch": self.epoch, "seed": self.seed, "position": position}
        if self.num_replicas > 1:
            state["num_replicas"] = self.num_replicas
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the first index not yet yielded in the saved epoch."""
        if int(state["seed"]) != self.seed:
            raise ValueError(
                f"the checkpoint's sampler seed is {state['seed']}, this sampler's is "
                f"{self.seed}; resume with the same run.seed"
            )
        replicas = int(state.get("num_replicas", 1))
        if replicas != self.num_replicas and int(state["position"]) != 0:
            raise ValueError(
                f"the checkpoint's position is per process for {replicas} data-parallel "
                f"process(es), this run has {self.num_replicas}; resume with the same "
                "trainer.devices (or from an epoch-end checkpoint)"
            )
        position = int(state["position"])
        if not 0 <= position <= self.num_samples:
            raise ValueError(
                f"sampler position {position} is outside a dataset of {self.num_samples} "
                "samples; did the dataset change since the checkpoint?"
            )
        self.epoch = int(state["epoch"])
        self.position = self._start = position
