"""The schema reference (every key, type, default, description) rendered as Markdown.

``docs/configuration.md`` embeds this output; a test keeps the two identical, so the
documented defaults can never drift from the code.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from trainforge.config._schema import SECTION_MODELS

__all__ = ["schema_reference_markdown"]

_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin is Annotated:  # a constrained element (the betas): its type and bounds
        metadata = [m for a in args[1:] for m in getattr(a, "metadata", [a])]
        return _type_name(args[0]) + _bounds(metadata)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, symbol in _BOUNDS:
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        if getattr(item, "allow_inf_nan", True) is False:
            parts.append("finite")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: Any) -> str:
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_rows(annotation, key))
            continue
        kind = _type_name(annotation).replace("|", "\\|")
        rows.append(
            f"| `{key}` | `{kind}`{_bounds(field.metadata)} | `{_default(field)}` "
            f"| {field.description or ''} |"
        )
    return rows


def schema_reference_markdown() -> str:
    """One Markdown table per config section: key, type and bounds, default, description."""
    blocks = []
    for section, model in SECTION_MODELS.items():
        title = (model.__doc__ or "").strip().splitlines()[0]
        blocks.append(
            "\n".join(
                [
                    f"### `{section}`: {title}",
                    "",
                    "| key | type | default | description |",
                    "|---|---|---|---|",
                    *_rows(model, section),
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"
