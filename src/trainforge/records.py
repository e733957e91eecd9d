"""``ConfigRecord``: what components below the composition root know of a run's config.

The config tree (``TrainingConfig``) stays at the edge: ``train/`` reads it and passes plain
arguments to every component. Components that must *store* the config with their output
(a checkpoint's manifest, a tracked run) get this small record instead: the resolved
values as plain data, their hash and the provenance of every value. It is built once per
run (``TrainingConfig.record()``) and imports nothing, so the tracker and the checkpoint
engine depend on neither the config package nor each other.

Examples:
    >>> record = ConfigRecord.of({"optim": {"lr": 0.1}})
    >>> record.data, len(record.hash), record.provenance
    ({'optim': {'lr': 0.1}}, 64, None)
    >>> flatten(record.data)
    {'optim.lr': 0.1}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "HASH_EXCLUDED_PREFIXES",
    "REFERENCE_PROFILE_FILE",
    "ConfigRecord",
    "ConfigSource",
    "SupportsConfigRecord",
    "flatten",
    "values_hash",
]

REFERENCE_PROFILE_FILE = "reference_profile.json"
"""The file a run's drift monitor writes: the profile of the data it trained on."""

# Keys (dotted prefixes) that never enter the hash: they do not change what is computed.
HASH_EXCLUDED_PREFIXES: tuple[str, ...] = (
    "run.name",
    "run.output_dir",
    "run.tags",
    "run.notes",
    "run.log_level",
    "loggers",
    "tracking",
    "export",
    "checkpoint.dirpath",
    "checkpoint.mirror",
    "checkpoint.keep_best_k",
    "checkpoint.keep_last_n",
    "checkpoint.keep_every_n_epochs",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "callbacks.monitoring",
    "callbacks.profiler",
    "callbacks.lr_monitor",
    "data.num_workers",
    "data.pin_memory",
)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys; lists, scalars and empty mappings are leaves.

    Examples:
        >>> flatten({"optim": {"lr": 1, "betas": [0.9, 0.99]}, "tags": {}})
        {'optim.lr': 1, 'optim.betas': [0.9, 0.99], 'tags': {}}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def _excluded(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in HASH_EXCLUDED_PREFIXES)


def values_hash(data: Mapping[str, Any]) -> str:
    """SHA256 (hex) of the training-relevant values of a config; independent of key order.

    Run-only keys (:data:`HASH_EXCLUDED_PREFIXES`: names, folders, logging, retention) do
    not enter it, so renaming a run or moving its output keeps the hash.
    """
    hashed = {k: v for k, v in flatten(data).items() if not _excluded(k)}
    payload = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@runtime_checkable
class SupportsConfigRecord(Protocol):
    """A config object that can describe itself as a :class:`ConfigRecord`."""

    def record(self) -> ConfigRecord:
        """The config's values, hash and provenance as plain data."""
        ...


@dataclass(frozen=True)
class ConfigRecord:
    """A run's resolved config as plain data, its hash and per-value provenance.

    Attributes:
        data: The resolved values, nested as in the YAML (plain dicts, lists, scalars).
        hash: A stable SHA256 (hex) of the training-relevant values.
        provenance: ``{"optim.lr": {"source": "cli", ...}}`` per leaf, or None when the
            values came as a bare mapping.
    """

    data: Mapping[str, Any]
    hash: str
    provenance: Mapping[str, Mapping[str, Any]] | None = None

    @classmethod
    def of(cls, config: ConfigRecord | SupportsConfigRecord | Mapping[str, Any]) -> ConfigRecord:
        """A record of ``config``: a record as is, a config object's ``record()``, or a mapping.

        A bare mapping is hashed with :func:`values_hash` and has no provenance.

        Raises:
            TypeError: ``config`` is none of the three.
        """
        if isinstance(config, ConfigRecord):
            return config
        if isinstance(config, Mapping):
            data = dict(config)
            return cls(data, values_hash(data), None)
        if isinstance(config, SupportsConfigRecord):
            return config.record()
        raise TypeError(
            f"config must be a ConfigRecord, a mapping or a TrainingConfig; got "
            f"{type(config).__name__}"
        )

    @classmethod
    def optional(
        cls, config: ConfigRecord | SupportsConfigRecord | Mapping[str, Any] | None
    ) -> ConfigRecord | None:
        """:meth:`of`, with None passed through."""
        return None if config is None else cls.of(config)

    def plain(self) -> dict[str, Any]:
        """``{"config", "config_hash", "config_provenance"}``: how manifests and runs store it."""
        return {
            "config": dict(self.data),
            "config_hash": self.hash,
            "config_provenance": None if self.provenance is None else dict(self.provenance),
        }


ConfigSource = ConfigRecord | SupportsConfigRecord | Mapping[str, Any]
"""What a component accepts as a run's config: a record, a config object or a mapping."""
