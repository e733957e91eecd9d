"""Task templates: YAML files shipped inside the package, listed by name.

A template is a config file in ``trainforge/config/templates/NAME.yaml``; its first
comment line holds the command that trains it. Adding a task template is adding a file.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from trainforge.config._yaml import _Loader
from trainforge.errors import ConfigError, did_you_mean

__all__ = ["describe_template", "list_templates", "load_template", "template_path"]

_PACKAGE = "trainforge.config"
_DIR = "templates"


def _files() -> dict[str, Any]:
    root = resources.files(_PACKAGE).joinpath(_DIR)
    return {
        entry.name.removesuffix(".yaml"): entry
        for entry in root.iterdir()
        if entry.name.endswith(".yaml")
    }


def list_templates() -> list[str]:
    """Names of the templates shipped with trainforge, sorted."""
    return sorted(_files())


def template_path(name: str) -> Any:
    """The packaged resource of template ``name`` (raises ConfigError listing valid names)."""
    files = _files()
    if name not in files:
        guess = did_you_mean(name, files)
        raise ConfigError(
            f"unknown template '{name}'" + (f"; did you mean '{guess}'?" if guess else ""),
            hint=f"valid templates: {', '.join(sorted(files)) or '(none)'}",
        )
    return files[name]


def load_template(name: str) -> dict[str, Any]:
    """The template's values as plain nested data (interpolations left unresolved)."""
    data = yaml.load(template_path(name).read_text(encoding="utf-8"), Loader=_Loader)
    if not isinstance(data, dict):
        raise ConfigError(f"template '{name}' is not a mapping")
    return data


def describe_template(name: str) -> str:
    """The template's leading comment block (what it trains and the command)."""
    lines = []
    for line in template_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(line for line in lines if line) or yaml.safe_dump(load_template(name))
