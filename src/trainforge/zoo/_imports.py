"""User components by import path (``"pkg.module:Name"``) and keyword checking.

Built-in names and import paths go through the same two steps: resolve a factory, then
call it with the config's kwargs. Both steps fail with a trainforge error that names the
path and the offending argument, never with a bare ``ModuleNotFoundError`` or
``TypeError`` from deep inside a factory.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from trainforge.errors import ConfigError, ImportPathError, did_you_mean

__all__ = ["ImportPathError", "call_with_kwargs", "is_import_path", "resolve_import_path"]


def is_import_path(name: str) -> bool:
    """Whether ``name`` is an import path (``pkg.module:Name``) rather than a built-in."""
    return ":" in name


def resolve_import_path(path: str, *, kind: str) -> Any:
    """Import ``pkg.module:Name`` (``Name`` may be dotted) and return the object.

    Args:
        path: The import path.
        kind: What the path names ("model", "dataset"), used in error messages.

    Raises:
        ImportPathError: The path is malformed, the module cannot be imported, or it has
            no such attribute (with the closest public name).

    Examples:
        >>> resolve_import_path("collections:OrderedDict", kind="model").__name__
        'OrderedDict'
    """
    module_name, _, attr_path = path.partition(":")
    if not module_name or not attr_path:
        raise ImportPathError(
            f"{kind} import path '{path}' is malformed",
            hint="write it as 'pkg.module:Name', e.g. 'my_project.models:Net'",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing and module_name.startswith(missing):
            message = f"cannot import {kind} '{path}': no module named '{missing}'"
            hint = "check the spelling, and that the package is installed or on PYTHONPATH"
        else:
            message = f"cannot import {kind} '{path}': importing '{module_name}' failed: {exc}"
            hint = "the module exists but one of its own imports failed"
        raise ImportPathError(message, hint=hint) from exc
    target: Any = module
    walked = module_name
    for part in attr_path.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            guess = did_you_mean(part, names)
            raise ImportPathError(
                f"cannot import {kind} '{path}': '{walked}' has no attribute '{part}'"
                + (f"; did you mean '{guess}'?" if guess else ""),
                hint=f"public names in '{walked}': {', '.join(names[:20]) or '(none)'}",
            )
        target = getattr(target, part)
        walked = f"{walked}.{part}"
    return target


def call_with_kwargs(
    factory: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    label: str,
    optional: Mapping[str, Any] | None = None,
) -> Any:
    """Call ``factory(**kwargs)`` after checking the kwargs against its signature.

    Args:
        factory: A class or callable.
        kwargs: Keyword arguments from the config.
        label: How to name the component in errors ("model 'mlp'").
        optional: Arguments passed only when the factory's signature names them and
            ``kwargs`` does not set them (e.g. ``task_spec``, ``seed``).

    Raises:
        ConfigError: A keyword the factory does not take, or a required one missing.
    """
    call_kwargs = dict(kwargs)
    try:
        signature: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins and C extensions have no signature
        signature = None
    if signature is not None:
        params = signature.parameters
        for name, value in (optional or {}).items():
            if name in params and name not in call_kwargs:
                call_kwargs[name] = value
        try:
            signature.bind(**call_kwargs)
        except TypeError as exc:
            accepted = [
                n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            unknown = [k for k in call_kwargs if k not in params]
            guess = did_you_mean(unknown[0], accepted) if unknown else None
            raise ConfigError(
                f"{label} does not accept these arguments: {exc}"
                + (f"; did you mean '{guess}'?" if guess else ""),
                hint=f"accepted arguments: {', '.join(accepted) or '(none)'}",
            ) from exc
    return factory(**call_kwargs)
