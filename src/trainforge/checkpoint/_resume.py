"""Resume validation: is this checkpoint compatible with the config and model of now?

Config differences come from :func:`trainforge.config.diff_configs`, key by key with a
severity. ``strict`` refuses breaking changes unless each key is allowed explicitly and
refuses any model key/shape mismatch; ``warn`` logs them and goes on. Allowed changes are
returned so the caller can record them in the run's provenance. An allowed key must name a
key (or a section) of the saved or the current config: a typo is refused with the closest
key, whatever the mode, instead of silently allowing nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from trainforge.config import ConfigChange, diff_configs
from trainforge.errors import ResumeError, did_you_mean
from trainforge.records import flatten

__all__ = ["ResumeResult", "check_allowed_keys", "compare_state_dicts", "validate_resume"]

logger = logging.getLogger(__name__)


@dataclass
class ResumeResult:
    """A loaded checkpoint plus what differs from the current config and model."""

    checkpoint: dict[str, Any]
    changes: list[ConfigChange] = field(default_factory=list)
    allowed_changes: list[ConfigChange] = field(default_factory=list)
    model_mismatches: list[str] = field(default_factory=list)
    hash_matches: bool | None = None

    @property
    def breaking(self) -> list[ConfigChange]:
        """Changes classified ``breaking``."""
        return [c for c in self.changes if c.severity == "breaking"]


def compare_state_dicts(
    model_state: Mapping[str, Any], saved_state: Mapping[str, Any]
) -> list[str]:
    """Human-readable differences in keys and shapes between a model and a checkpoint."""
    problems = [f"missing from checkpoint: {k}" for k in model_state if k not in saved_state]
    problems += [f"not in model: {k}" for k in saved_state if k not in model_state]
    for key in model_state.keys() & saved_state.keys():
        want = tuple(getattr(model_state[key], "shape", ()))
        got = tuple(getattr(saved_state[key], "shape", ()))
        if want != got:
            problems.append(f"shape of {key}: checkpoint {list(got)} vs model {list(want)}")
    return sorted(problems)


def _is_allowed(key: str, allowed: Iterable[str]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


def check_allowed_keys(
    allowed: Iterable[str], *configs: Mapping[str, Any] | None, where: Any = None
) -> None:
    """Raise unless every allowed key names a key or section of one of ``configs``.

    Raises:
        ResumeError: Naming the unknown key and the closest existing one.
    """
    keys: set[str] = set()
    for config in configs:
        for key in flatten(config or {}):
            parts = key.split(".")
            keys.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    if not keys:
        return
    for key in allowed:
        if key not in keys:
            guess = did_you_mean(key, keys)
            raise ResumeError(
                f"--allow-config-change {key!r} names no key of the config"
                + (f"; did you mean {guess!r}?" if guess else ""),
                path=where,
                hint="give a dotted config key such as optim.name, or a section such as model",
            )


def validate_resume(
    checkpoint: dict[str, Any],
    current_config: Mapping[str, Any] | None,
    current_hash: str | None,
    *,
    mode: Literal["strict", "warn"] = "strict",
    allow_changes: Iterable[str] = (),
    model_state: Mapping[str, Any] | None = None,
) -> ResumeResult:
    """Compare ``checkpoint`` with the current config and model state.

    Raises:
        ResumeError: In ``strict`` mode, breaking changes that are not allowed, or model
            mismatches; the message lists every one of them.
    """
    if mode not in ("strict", "warn"):
        raise ValueError(f"mode must be 'strict' or 'warn', got {mode!r}")
    allowed = tuple(allow_changes)
    result = ResumeResult(checkpoint)
    saved_config, saved_hash = checkpoint.get("config"), checkpoint.get("config_hash")
    check_allowed_keys(allowed, saved_config, current_config, where=checkpoint.get("path"))
    if saved_hash is not None and current_hash is not None:
        result.hash_matches = saved_hash == current_hash
    if saved_config is not None and current_config is not None and not result.hash_matches:
        result.changes = diff_configs(saved_config, current_config)
    if model_state is not None and checkpoint.get("model_state_dict") is not None:
        result.model_mismatches = compare_state_dicts(model_state, checkpoint["model_state_dict"])
    result.allowed_changes = [c for c in result.changes if _is_allowed(c.key, allowed)]
    refused = [c for c in result.breaking if not _is_allowed(c.key, allowed)]
    problems = [f"config {c}" for c in refused] + [f"model: {m}" for m in result.model_mismatches]
    for change in result.changes:
        if change not in refused:
            logger.info("resume: config change %s", change)
    if problems:
        where = checkpoint.get("path")
        summary = f"checkpoint {where} does not match the current run:\n" + "\n".join(
            f"  - {p}" for p in problems
        )
        if mode == "strict":
            keys = ", ".join(sorted({c.key for c in refused}))
            allow = (
                f"allow the config keys one by one (allow_changes / --allow-config-change): "
                f"{keys}; or "
                if keys
                else ""
            )
            raise ResumeError(
                summary,
                path=where,
                hint=f"{allow}resume in warn mode (mode='warn', config "
                "checkpoint.resume_mode=warn) to continue with what still fits",
            )
        logger.warning("%s\n  continuing (mode=warn)", summary)
    return result
