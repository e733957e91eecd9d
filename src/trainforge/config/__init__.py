"""Validated configuration with per-value provenance (the only importer of OmegaConf)."""

from trainforge.config._compat import (
    ConfigChange,
    classify_key,
    config_hash,
    diff_configs,
    flatten,
)

__all__ = ["ConfigChange", "classify_key", "config_hash", "diff_configs", "flatten"]
