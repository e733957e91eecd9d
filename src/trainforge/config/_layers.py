"""Config layers: where values come from, before they are merged.

A :class:`Layer` is plain nested data and the provenance source of each of its keys:
config files (with ``defaults:`` includes and ``environments:`` overlays, or a sibling
``NAME.ENV.yaml``), ``TRAINFORGE__*`` environment variables, and command-line overrides
in Hydra (``optim.lr=3e-4``) or LightningCLI (``--optim.lr 3e-4``) style.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge.config._yaml import parse_dotlist, read_yaml_file, set_dotted
from trainforge.errors import ConfigError, ConfigFileError, did_you_mean

__all__ = [
    "ENV_SELECT_VAR",
    "ENV_VAR_PREFIX",
    "Layer",
    "file_layers",
    "merge_into",
    "nest",
    "parse_overrides",
    "split_cli_args",
]

ENV_VAR_PREFIX = "TRAINFORGE__"
ENV_SELECT_VAR = "TRAINFORGE_ENV"


@dataclass
class Layer:
    """One source of values: plain nested data and how to name its origin per key."""

    data: dict[str, Any]
    source: str | Callable[[str], str]

    def source_of(self, key: str) -> str:
        """The provenance source string for ``key`` set by this layer."""
        return self.source if isinstance(self.source, str) else self.source(key)


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # different drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _file_source(name: str) -> Callable[[str], str]:
    def source(key: str) -> str:
        section = key.rsplit(".", 1)[0] if "." in key else key
        return f"config:{name}:{section}"

    return source


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_file(path, _display(path))


@dataclass
class _ParsedFile:
    path: Path
    data: dict[str, Any]
    environments: dict[str, Any]


def _expand_file(path: Path, stack: tuple[Path, ...], out: list[_ParsedFile]) -> None:
    path = path.resolve()
    if path in stack:
        cycle = " -> ".join(_display(p) for p in (*stack[stack.index(path) :], path))
        raise ConfigFileError(
            f"defaults include cycle: {cycle}",
            file=path,
            hint="remove one of these includes so no file includes itself",
        )
    data = _read_yaml(path)
    includes = data.pop("defaults", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigFileError(
            f"'defaults' in {_display(path)} must be a file name or a list of file names",
            file=path,
            key="defaults",
        )
    for include in includes:
        target = (path.parent / include).resolve()
        if not target.exists() and target.suffix == "":
            target = target.with_suffix(".yaml")
        if not target.exists():
            raise ConfigFileError(
                f"'{include}' included by {_display(path)} (defaults) does not exist",
                file=path,
                key="defaults",
                hint=f"paths in 'defaults' are relative to {_display(path.parent) or '.'}",
            )
        _expand_file(target, (*stack, path), out)
    environments = data.pop("environments", None) or {}
    if not isinstance(environments, dict):
        raise ConfigFileError(
            f"'environments' in {_display(path)} must map environment names to sections",
            file=path,
            key="environments",
        )
    out.append(_ParsedFile(path, data, environments))


def _env_file(path: Path, env: str) -> Path:
    return path.with_name(f"{path.stem}.{env}{path.suffix}")


def _environment_layers(files: Sequence[_ParsedFile], env: str | None) -> list[Layer]:
    available: set[str] = set()
    for parsed in files:
        available.update(parsed.environments)
        for sibling in parsed.path.parent.glob(f"{parsed.path.stem}.*{parsed.path.suffix}"):
            parts = sibling.name[len(parsed.path.stem) + 1 :].rsplit(".", 1)
            if len(parts) == 2 and parts[0]:
                available.add(parts[0])
    if env is None:
        return []
    if env not in available:
        names = ", ".join(sorted(available)) or "(none: no config file defines 'environments')"
        guess = did_you_mean(env, available)
        raise ConfigError(
            f"unknown environment '{env}'" + (f"; did you mean '{guess}'?" if guess else ""),
            hint=f"valid environments: {names}; define one under 'environments:' in a "
            "config file or in a file NAME.ENV.yaml beside NAME.yaml",
        )
    layers = []
    for parsed in files:
        overlay = parsed.environments.get(env)
        if overlay:
            if not isinstance(overlay, dict):
                raise ConfigFileError(
                    f"environments.{env} in {_display(parsed.path)} must be a mapping",
                    file=parsed.path,
                    key=f"environments.{env}",
                )
            layers.append(Layer(overlay, f"env:{env}"))
        sibling = _env_file(parsed.path, env)
        if sibling.exists():
            data = _read_yaml(sibling)
            data.pop("defaults", None)
            data.pop("environments", None)
            layers.append(Layer(data, f"env:{env}"))
    return layers


def split_cli_args(args: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split CLI words into config files and ``key=value`` overrides.

    Accepts Hydra style (``optim.lr=3e-4``) and LightningCLI style (``--optim.lr 3e-4``,
    ``--optim.lr=3e-4``).
    """
    files: list[str] = []
    overrides: list[str] = []
    words = list(args)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            body = word[2:]
            if "=" in body:
                overrides.append(body)
            elif i + 1 < len(words):
                overrides.append(f"{body}={words[i + 1]}")
                i += 1
            else:
                raise ConfigError(
                    f"option '{word}' has no value",
                    key=body,
                    hint=f"write '{word} VALUE' or '{body}=VALUE'",
                )
        elif "=" in word and not Path(word).exists():
            overrides.append(word)
        elif Path(word).suffix in (".yaml", ".yml") or Path(word).exists():
            files.append(word)
        else:
            raise ConfigError(
                f"override '{word}' is not of the form key=value (and no such config file exists)",
                hint="write overrides as section.key=value, e.g. optim.lr=3e-4",
            )
        i += 1
    return files, overrides


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` items (values read as YAML) into nested data."""
    return parse_dotlist(list(items))


def _env_var_layers(environ: Mapping[str, str]) -> list[Layer]:
    layers = []
    for name in sorted(environ):
        if name.startswith(ENV_VAR_PREFIX) and len(name) > len(ENV_VAR_PREFIX):
            key = ".".join(p.lower() for p in name[len(ENV_VAR_PREFIX) :].split("__"))
            layers.append(Layer(parse_overrides([f"{key}={environ[name]}"]), f"envvar:{name}"))
    return layers


def file_layers(
    files: Sequence[str | Path], env: str | None, environ: Mapping[str, str]
) -> list[Layer]:
    """Layers of config ``files`` (includes first), their ``env`` overlays and variables."""
    parsed: list[_ParsedFile] = []
    for file in files:
        _expand_file(Path(file), (), parsed)
    layers = [Layer(item.data, _file_source(_display(item.path))) for item in parsed]
    layers.extend(_environment_layers(parsed, env or environ.get(ENV_SELECT_VAR) or None))
    layers.extend(_env_var_layers(environ))
    return layers


def merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Deep-merge ``layer`` into ``base`` in place (mappings merge, anything else replaces)."""
    for key, value in layer.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merge_into(current, value)
        elif isinstance(value, Mapping):
            base[key] = copy.deepcopy(dict(value))
        else:
            base[key] = copy.deepcopy(value)


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-or-nested mapping to nested plain data; values are taken as given."""
    root: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = nest(value)
        elif isinstance(value, tuple):
            value = list(value)
        existing = _get_dotted(root, str(key))
        if isinstance(value, dict) and isinstance(existing, dict):
            merge_into(existing, value)
        else:
            set_dotted(root, str(key), value)
    return root


def _get_dotted(root: dict[str, Any], key: str) -> Any:
    node: Any = root
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
