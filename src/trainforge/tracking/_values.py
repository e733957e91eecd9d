"""Plain-data conversions: configs (mapping or duck-typed object), params, tags, JSON text.

``tracking`` must not import ``trainforge.config`` (same layer), so a config is either a
plain mapping or any object with ``to_dict()``, ``config_hash()`` and ``provenance_dict()``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "config_parts",
    "dumps",
    "flatten",
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


def config_parts(config: Any) -> tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]:
    """Split a config into (plain dict, hash, provenance) whatever form it was given in.

    Args:
        config: ``None``, a mapping, or an object with ``to_dict``/``config_hash``/
            ``provenance_dict`` (a ``TrainingConfig``).

    Returns:
        The config as a dict, its hash (sha256 of sorted JSON for a mapping) and the
        provenance (``None`` for a mapping).
    """
    if config is None:
        return None, None, None
    if isinstance(config, Mapping):
        data = dict(config)
        return data, _hash_mapping(data), None
    if not callable(getattr(config, "to_dict", None)):
        raise TypeError(
            f"config must be a mapping or an object with to_dict(); got {type(config).__name__}"
        )
    data = dict(config.to_dict())
    hash_fn = getattr(config, "config_hash", None)
    config_hash = str(hash_fn()) if callable(hash_fn) else _hash_mapping(data)
    provenance_fn = getattr(config, "provenance_dict", None)
    provenance = dict(provenance_fn()) if callable(provenance_fn) else None
    return data, config_hash, provenance


def _hash_mapping(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def param_value(value: Any) -> tuple[str, float | None]:
    """Text and numeric form of a param: strings as is, other values as JSON text."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value), None
    if isinstance(value, (int, float)):
        number = float(value)
        return json.dumps(value), None if math.isnan(number) else number
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
