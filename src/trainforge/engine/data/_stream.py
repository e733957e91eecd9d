"""``StreamLoader``: a user's DataLoader, or a stream of batches, with a resumable position.

Datasets with ``__len__`` and ``__getitem__`` get trainforge's own loader (a
:class:`~trainforge.engine.data.ResumableSampler`: bit-exact resume anywhere). A
``DataLoader`` built by the user is used as it is, and an ``IterableDataset`` has no
indices to reorder; for both the position is the number of batches of the current epoch
already trained. Resuming mid-epoch iterates the loader afresh and skips that many
batches, which continues exactly where the interrupted run was only when a fresh
iteration yields the same batches in the same order:

- a ``DataLoader`` over a ``SequentialSampler`` (``shuffle=False``), a
  ``DistributedSampler`` or a ``ResumableSampler`` (seeded per epoch): exact;
- a ``RandomSampler`` (``shuffle=True``): not exact, a warning at resume says so;
- an ``IterableDataset``: exact when the stream is deterministic (the same items in the
  same order on every pass, per epoch when it has ``set_epoch``); trainforge cannot tell,
  and a warning at resume says what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import (
    DistributedSampler,
    IterableDataset,
    SequentialSampler,
)

from trainforge.engine.data._sampler import ResumableSampler

__all__ = ["StreamLoader"]

logger = logging.getLogger(__name__)

_EXACT_SAMPLERS = (SequentialSampler, DistributedSampler, ResumableSampler)


class StreamLoader:
    """Iterates ``loader`` epoch by epoch; its state is (epoch, batches done).

    ``set_epoch`` is forwarded to the loader's sampler and dataset when they have one
    (``DistributedSampler``, Hugging Face iterable datasets), so their order can depend on
    the epoch.

    Args:
        loader: A ``DataLoader`` (or any re-iterable of batches).

    Examples:
        >>> import torch
        >>> data = torch.utils.data.TensorDataset(torch.arange(6.0))
        >>> stream = StreamLoader(torch.utils.data.DataLoader(data, batch_size=2))
        >>> stream.load_state_dict({"kind": "stream", "epoch": 0, "batches": 2})
        >>> [b[0].tolist() for b in stream]
        [[4.0, 5.0]]
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.epoch = 0
        self.batches = 0
        self._skip = 0
        self.fit_progress: Callable[[], tuple[int, int, bool] | None] = lambda: None

    @property
    def batch_size(self) -> int | None:
        """The loader's batch size (None when it batches with a batch sampler)."""
        return getattr(self.loader, "batch_size", None)

    @property
    def dataset(self) -> Any:
        """The loader's dataset."""
        return getattr(self.loader, "dataset", None)

    @property
    def exact(self) -> bool:
        """Whether skipping the done batches of a fresh iteration resumes exactly."""
        dataset = self.dataset
        if isinstance(dataset, IterableDataset):
            return False  # a stream: trainforge cannot tell whether it repeats itself
        sampler = getattr(self.loader, "sampler", None)
        return isinstance(sampler, _EXACT_SAMPLERS)

    def describe(self) -> str:
        """What the loader draws from, for messages."""
        dataset = self.dataset
        if isinstance(dataset, IterableDataset):
            return f"an IterableDataset ({type(dataset).__name__})"
        sampler = getattr(self.loader, "sampler", None)
        return f"a DataLoader with a {type(sampler).__name__}"

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch``; another epoch than the current one starts at its beginning."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._skip = 0

    def __iter__(self) -> Iterator[Any]:
        for part in (getattr(self.loader, "sampler", None), self.dataset):
            set_epoch = getattr(part, "set_epoch", None)
            if callable(set_epoch) and not isinstance(part, ResumableSampler):
                set_epoch(self.epoch)
        skip, self._skip = self._skip, 0
        self.batches = 0
        for batch in self.loader:
            self.batches += 1
            if self.batches <= skip:
                continue
            yield batch
        self.epoch += 1
        self.batches = 0

    def state_dict(self, *, batches: int | None = None, samples: int = 0) -> dict[str, Any]:
        """``{"kind": "stream", "epoch", "batches", "position"}`` (position: samples done).

        Inside a Lightning fit the batches processed (not fetched ahead) are saved.
        """
        epoch = self.epoch
        progress = self.fit_progress()
        if batches is None and progress is not None:
            epoch, done, finished = progress
            epoch, batches = (epoch + 1, 0) if finished else (epoch, done)
        count = self.batches if batches is None else batches
        return {"kind": "stream", "epoch": epoch, "batches": count, "position": samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Skip the saved epoch's done batches on the next iteration (warns if not exact)."""
        if state.get("kind") != "stream":
            raise ValueError(
                "the checkpoint's training data was a dataset with indices (resumed by "
                "sample), this run's is a DataLoader or an IterableDataset: resume with the "
                "same kind of training data"
            )
        self.epoch = int(state["epoch"])
        self._skip = int(state["batches"])
        if self._skip and not self.exact:
            logger.warning(
                "resuming epoch %d after %d batches: the training data is %s, whose order "
                "trainforge cannot reproduce; the resumed run skips the first %d batches of "
                "a fresh pass, so this epoch may repeat or miss samples. For an exact "
                "resume pass the Dataset itself (or a DataLoader with shuffle=False).",
                self.epoch,
                self._skip,
                self.describe(),
                self._skip,
            )
