"""Config compatibility: a stable hash of what affects training, and a typed diff.

The hash covers only values that change what a run computes; run-only keys (name, output
directory, loggers, tracking, progress bar, ...) are left out so renaming a run or turning
on W&B does not make its checkpoints "incompatible". The diff classifies every changed
key as ``safe``, ``risky`` or ``breaking`` so resume validation can refuse only what
would really break a resumed run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from trainforge.records import HASH_EXCLUDED_PREFIXES, flatten, values_hash

__all__ = [
    "HASH_EXCLUDED_PREFIXES",
    "ConfigChange",
    "Severity",
    "classify_key",
    "config_hash",
    "diff_configs",
    "flatten",
]

Severity = Literal["safe", "risky", "breaking"]


# Most specific prefix wins. Anything not listed is "safe".
_BREAKING: tuple[str, ...] = (
    "model",
    "task",
    "optim.name",
    "optim.scheduler",
    "trainer.optimization",
    "data.name",
    "data.kwargs",
    "data.collator",
)
_RISKY: tuple[str, ...] = (
    "model.sdpa",  # same weights, same outputs within tolerance; kernels differ
    "optim",
    "data.batch_size",
    "data.drop_last",
    "data.val_split",
    "trainer.accumulate_grad_batches",
    "trainer.micro_batch_size",
    "trainer.precision",
    "trainer.gradient_clip_val",
    "trainer.strategy",
    "trainer.devices",
    "trainer.compile",
    "run.seed",
    "run.deterministic",
)


@dataclass(frozen=True)
class ConfigChange:
    """One key whose value differs between two configs."""

    key: str
    old: Any
    new: Any
    severity: Severity

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} -> {self.new!r} [{self.severity}]"


def _matches(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _as_mapping(config: Any) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"expected a TrainingConfig or a mapping, got {type(config).__name__}")


def config_hash(config: Any) -> str:
    """SHA256 (hex) of the training-relevant values; independent of key order.

    Args:
        config: A ``TrainingConfig`` or a plain (nested) mapping of resolved values.
    """
    return values_hash(_as_mapping(config))


def classify_key(key: str) -> Severity:
    """How dangerous a change of ``key`` is for resuming: safe, risky or breaking."""
    best: tuple[int, Severity] = (-1, "safe")
    for prefixes, severity in ((_BREAKING, "breaking"), (_RISKY, "risky")):
        for prefix in prefixes:
            if _matches(key, prefix) and len(prefix) > best[0]:
                best = (len(prefix), severity)  # type: ignore[assignment]
    return best[1]


_MISSING = object()


def diff_configs(old: Any, new: Any) -> list[ConfigChange]:
    """Every key whose value differs, sorted by key, each with its severity."""
    a, b = flatten(_as_mapping(old)), flatten(_as_mapping(new))
    changes = []
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            changes.append(
                ConfigChange(
                    key,
                    None if va is _MISSING else va,
                    None if vb is _MISSING else vb,
                    classify_key(key),
                )
            )
    return changes
