"""``load_config``: a config from templates, presets, files, environments and overrides.

Layers, lowest first: schema defaults < template < preset < config files (each after the
files it ``defaults:``-includes) < environment overlays < ``TRAINFORGE__*`` variables <
CLI dotlist < programmatic overrides (:mod:`trainforge.config._layers`); merged,
resolved and validated with per-leaf provenance (:mod:`trainforge.config._resolve`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainforge.config._config import TrainingConfig
from trainforge.config._layers import Layer, file_layers, nest, parse_overrides, split_cli_args
from trainforge.config._presets import PRESETS
from trainforge.config._resolve import build_config
from trainforge.config._templates import load_template
from trainforge.errors import ConfigError, did_you_mean

__all__ = ["load_config"]


def load_config(
    *files: str | Path,
    overrides: Mapping[str, Any] | None = None,
    cli: Sequence[str] = (),
    preset: str | None = None,
    template: str | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrainingConfig:
    """Load a ``TrainingConfig`` from layers, recording where every value came from.

    Args:
        *files: Config files; later files win. A file may include others with
            ``defaults: [base.yaml]`` and define ``environments: {dev: {...}}``.
        overrides: Programmatic overrides, dotted keys or nested (provenance ``override``).
        cli: Command-line overrides, ``key=value`` or ``--key value`` (provenance ``cli``).
        preset: ``small``, ``medium`` or ``large``.
        template: A template name (see ``list_templates()``).
        env: Environment overlay to apply; ``TRAINFORGE_ENV`` when None.
        environ: Where to read ``TRAINFORGE__*`` and ``TRAINFORGE_ENV`` (``os.environ``).

    Returns:
        A validated ``TrainingConfig`` with provenance.

    Raises:
        ConfigError: Listing every problem, each with its key and the layer that set it.

    Examples:
        >>> cfg = load_config(preset="small", cli=["optim.lr=0.1"])
        >>> cfg.optim.lr, cfg.provenance_of("optim.lr").render()
        (0.1, '(cli)')
    """
    environ = os.environ if environ is None else environ
    layers: list[Layer] = []
    if template is not None:
        layers.append(Layer(load_template(template), f"template:{template}"))
    if preset is not None:
        if preset not in PRESETS:
            guess = did_you_mean(preset, PRESETS)
            raise ConfigError(
                f"unknown preset '{preset}'" + (f"; did you mean '{guess}'?" if guess else ""),
                hint=f"valid presets: {', '.join(PRESETS)}",
            )
        layers.append(Layer(PRESETS[preset], f"preset:{preset}"))
    layers.extend(file_layers(files, env, environ))
    if cli:
        cli_files, cli_items = split_cli_args(cli)
        if cli_files:
            raise ConfigError(
                f"override '{cli_files[0]}' is not of the form key=value",
                hint="pass config files as positional files, overrides as key=value",
            )
        layers.append(Layer(parse_overrides(cli_items), "cli"))
    if overrides:
        layers.append(Layer(nest(overrides), "override"))
    return build_config(layers, model=TrainingConfig, file=Path(files[-1]) if files else None)
