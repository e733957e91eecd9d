"""Retention policies: small objects that each name the checkpoints they want kept.

A checkpoint survives if ANY policy keeps it (:class:`AnyOf`); the manager always adds
"protected" and "the one just written", and the newest one when nothing else is kept.
Policies see complete checkpoints only, newest first, and return the names to keep, so
they are pure functions that tables can test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from trainforge.checkpoint._metadata import CheckpointMetadata

__all__ = [
    "AnyOf",
    "KeepBestK",
    "KeepEveryNEpochs",
    "KeepLastN",
    "KeepProtected",
    "RetentionPolicy",
    "plan_retention",
]


class RetentionPolicy(Protocol):
    """Names the checkpoints (by directory name) that must be kept."""

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """Checkpoints to keep, given every complete checkpoint, newest first."""
        ...


@dataclass(frozen=True)
class KeepLastN:
    """Keep the ``n`` newest checkpoints (by save order)."""

    n: int

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """The first ``n`` of the newest-first list."""
        return {c.name for c in checkpoints[: max(self.n, 0)]}


@dataclass(frozen=True)
class KeepBestK:
    """Keep the ``k`` best by the monitored metric; ties go to the newer checkpoint.

    Each checkpoint is ranked in the mode it recorded; ``mode`` applies to checkpoints
    that recorded none.
    """

    k: int
    mode: Literal["min", "max"] = "min"

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """The ``k`` best among checkpoints that recorded a monitor value (NaN never ranks)."""
        scored = [c for c in checkpoints if c.metric is not None and c.metric == c.metric]

        def rank(c: CheckpointMetadata) -> tuple[float, int]:
            sign = 1.0 if (c.mode or self.mode) == "min" else -1.0
            return sign * float(c.metric or 0.0), -c.index

        return {c.name for c in sorted(scored, key=rank)[: max(self.k, 0)]}


@dataclass(frozen=True)
class KeepEveryNEpochs:
    """Keep the newest checkpoint of every epoch that is a multiple of ``n``."""

    n: int

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """One checkpoint per epoch divisible by ``n`` (the newest of that epoch)."""
        if self.n <= 0:
            return set()
        chosen: dict[int, str] = {}
        for c in checkpoints:  # newest first: the first seen per epoch wins
            if c.epoch % self.n == 0:
                chosen.setdefault(c.epoch, c.name)
        return set(chosen.values())


@dataclass(frozen=True)
class KeepProtected:
    """Keep every checkpoint saved with ``protected=True``."""

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """All protected checkpoints."""
        return {c.name for c in checkpoints if c.protected}


class AnyOf:
    """Keep a checkpoint if any of the given policies keeps it."""

    def __init__(self, *policies: RetentionPolicy) -> None:
        self.policies = policies

    def keep(self, checkpoints: Sequence[CheckpointMetadata]) -> set[str]:
        """Union of what every policy keeps."""
        kept: set[str] = set()
        for policy in self.policies:
            kept |= policy.keep(checkpoints)
        return kept

    def __repr__(self) -> str:
        return f"AnyOf({', '.join(map(repr, self.policies))})"


def plan_retention(
    checkpoints: Sequence[CheckpointMetadata],
    policy: RetentionPolicy,
    *,
    just_written: str | None = None,
) -> tuple[list[CheckpointMetadata], list[CheckpointMetadata]]:
    """Split ``checkpoints`` (newest first) into (kept, to delete) under ``policy``.

    Protected checkpoints and ``just_written`` are always kept, and so is the newest
    checkpoint when the policy would keep none (``keep_last_n=0, keep_best_k=0``):
    retention never leaves a run with nothing to resume or export.
    """
    kept_names = AnyOf(policy, KeepProtected()).keep(checkpoints)
    if just_written is not None:
        kept_names.add(just_written)
    if checkpoints and not kept_names:
        kept_names.add(checkpoints[0].name)
    kept = [c for c in checkpoints if c.name in kept_names]
    doomed = [c for c in checkpoints if c.name not in kept_names]
    return kept, doomed
