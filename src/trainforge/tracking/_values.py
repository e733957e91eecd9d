"""Plain-data conversions: configs, params, tags, JSON text.

``tracking`` must not import ``trainforge.config`` (same layer): a run's config arrives as
a :class:`~trainforge.records.ConfigRecord` (or a plain mapping).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from trainforge.records import ConfigRecord, ConfigSource
from trainforge.tracking._dialect import fold_float

__all__ = [
    "config_parts",
    "dumps",
    "loads",
    "param_value",
    "tag_items",
]


def dumps(value: Any) -> str | None:
    """JSON text of plain data (``None`` stays ``None``); unknown objects become strings."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


def loads(value: str | None) -> Any:
    """Inverse of :func:`dumps`."""
    return None if value is None else json.loads(value)


def config_parts(
    config: ConfigSource | None,
) -> tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]:
    """(plain dict, hash, provenance) of a config record, a mapping or a config object."""
    record = ConfigRecord.optional(config)
    if record is None:
        return None, None, None
    plain = record.plain()
    return plain["config"], plain["config_hash"], plain["config_provenance"]


def param_value(value: Any) -> tuple[str, float | None]:
    """Text and numeric form of a param: strings as is, other values as JSON text.

    The numeric form is what filters compare: NaN has none, ``±DBL_MAX`` is ``±inf``.
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(value), None
    if isinstance(value, (int, float)):
        number = float(value)
        return json.dumps(value), None if math.isnan(number) else fold_float(number)
    if isinstance(value, str):
        return value, None
    return json.dumps(value, sort_keys=True, default=str), None


def tag_items(tags: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str]:
    """Tags as a dict of strings; a list of names becomes ``{name: "true"}``."""
    if tags is None:
        return {}
    if isinstance(tags, str):
        return {tags: "true"}
    if isinstance(tags, Mapping):
        return {str(k): _tag_text(v) for k, v in tags.items()}
    return {str(name): "true" for name in tags}


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
