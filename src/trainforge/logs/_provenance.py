"""How a value's origin is written: ``(config:train.yaml:optim; runtime)``.

The tags mean (also printed by ``trainforge config legend``):
a source, which layer set the value last, and mutation tags added afterwards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainforge.logs._tables import log_section

__all__ = [
    "PROVENANCE_LEGEND",
    "Provenance",
    "format_provenance",
    "format_value",
    "log_config_overview",
]

PROVENANCE_LEGEND: tuple[tuple[str, str], ...] = (
    ("default", "the schema's default value; nothing overrode it"),
    ("template:<name>", "set by a task template (trainforge config templates)"),
    ("preset:<name>", "set by a size preset: small, medium or large"),
    ("config:<file>:<section>", "set in a config file, in that section"),
    ("env:<name>", "set by the environment overlay <name> (--env or TRAINFORGE_ENV)"),
    ("envvar:<NAME>", "set by the environment variable <NAME> (TRAINFORGE__SECTION__KEY)"),
    ("cli", "set on the command line (key=value or --key value)"),
    ("override", "set from Python (load_config(overrides=...) or TrainingConfigBuilder)"),
    ("runtime", "tag: changed after loading with config.update(key, value, reason)"),
    ("derived", "tag: computed by a validator from other values"),
    ("resume", "tag: a change accepted when resuming (--allow-config-change)"),
)


@dataclass(frozen=True)
class Provenance:
    """Where a value came from: the layer that set it last and any mutation tags."""

    source: str
    tags: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default=(), compare=False)

    def with_tag(self, tag: str, reason: str | None = None) -> Provenance:
        """A copy with ``tag`` added (once) and ``reason`` recorded."""
        tags = self.tags if tag in self.tags else (*self.tags, tag)
        reasons = (*self.reasons, reason) if reason else self.reasons
        return Provenance(self.source, tags, reasons)

    @property
    def is_default(self) -> bool:
        """True for an untouched default (no tags)."""
        return self.source == "default" and not self.tags

    def render(self) -> str:
        """``(source; tag; ...)``."""
        return format_provenance(self.source, self.tags)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for saving beside the config."""
        return {"source": self.source, "tags": list(self.tags), "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`."""
        return cls(data["source"], tuple(data.get("tags", ())), tuple(data.get("reasons", ())))


def format_provenance(source: str, tags: Iterable[str] = ()) -> str:
    """``(config:train.yaml:optim; runtime)``."""
    return "(" + "; ".join([source, *tags]) + ")"


def format_value(value: Any) -> str:
    """A compact one-line rendering of a config value."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value) if not isinstance(value, float) else f"{value:g}"
    return json.dumps(value, default=str)


def log_config_overview(
    rows: Sequence[tuple[str, Any, Provenance]],
    *,
    include_defaults: bool = False,
    logger: logging.Logger | None = None,
) -> None:
    """Log the config table ``key  value (provenance)``; untouched defaults hidden by default."""
    shown = [
        (key, f"{format_value(value)} {prov.render()}")
        for key, value, prov in rows
        if include_defaults or not prov.is_default
    ]
    log_section("configuration", shown, headers=("key", "value (provenance)"), logger=logger)
