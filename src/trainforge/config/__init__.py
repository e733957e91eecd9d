"""Validated configuration with per-value provenance (the only importer of OmegaConf).

``load_config`` composes schema defaults, a template, a preset, config files, an
environment overlay, ``TRAINFORGE__*`` variables, CLI overrides and programmatic overrides
(in that order), and returns a :class:`TrainingConfig` that knows which layer set each
value.
"""

from trainforge.config._builder import TrainingConfigBuilder
from trainforge.config._compat import (
    ConfigChange,
    classify_key,
    config_hash,
    diff_configs,
    flatten,
)
from trainforge.config._config import TrainingConfig
from trainforge.config._layers import parse_overrides, split_cli_args
from trainforge.config._loader import load_config
from trainforge.config._presets import PRESETS
from trainforge.config._resolve import schema_paths
from trainforge.config._schema import EXPORT_FORMATS
from trainforge.config._templates import describe_template, list_templates, load_template
from trainforge.config._yaml import save_yaml

__all__ = [
    "EXPORT_FORMATS",
    "PRESETS",
    "ConfigChange",
    "TrainingConfig",
    "TrainingConfigBuilder",
    "classify_key",
    "config_hash",
    "describe_template",
    "diff_configs",
    "flatten",
    "list_templates",
    "load_config",
    "load_template",
    "parse_overrides",
    "save_yaml",
    "schema_paths",
    "split_cli_args",
]
