"""``TrainingConfig``: the validated config tree that remembers where each value came from."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from trainforge.config._compat import ConfigChange, config_hash, diff_configs, flatten
from trainforge.config._layers import Layer, file_layers
from trainforge.config._resolve import (
    BUILDING,
    build_config,
    resolve_interpolations,
    templates_of,
)
from trainforge.config._schema import (
    SECTION_MODELS,
    CallbacksConfig,
    CheckpointConfig,
    DataConfig,
    ExportConfig,
    LoggersConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SchemaBase,
    TaskConfig,
    TrackingConfig,
    TrainerConfig,
)
from trainforge.errors import ConfigError, ConfigFileError, ConfigIssue, did_you_mean
from trainforge.logs import Provenance
from trainforge.records import ConfigRecord

__all__ = ["SAVED_FORMAT", "TrainingConfig"]

SAVED_FORMAT = "trainforge-config/1"
_DEFAULT = Provenance("default")


class TrainingConfig(SchemaBase):
    """Every setting of a training run, validated, with per-value provenance.

    Build one with :func:`trainforge.config.load_config` (files, presets, environments,
    CLI) or :class:`TrainingConfigBuilder`; ``TrainingConfig()`` is all defaults.

    Examples:
        >>> cfg = TrainingConfig()
        >>> cfg.update("optim.lr", 0.01, reason="lr finder")
        >>> cfg.provenance_of("optim.lr").render()
        '(default; runtime)'
    """

    run: RunConfig = Field(default_factory=RunConfig, description="Run identity.")
    task: TaskConfig = Field(default_factory=TaskConfig, description="What is learned.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The network.")
    data: DataConfig = Field(default_factory=DataConfig, description="The data.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimization.")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Loop driver.")
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig, description="Callbacks.")
    loggers: LoggersConfig = Field(default_factory=LoggersConfig, description="Loggers.")
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="Checkpoints."
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Tracking.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="Export.")

    _provenance: dict[str, Provenance] = PrivateAttr(default_factory=dict)
    # leaves whose value came from a ${...} interpolation: update() re-resolves them
    _templates: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        """Validate ``data`` (sections or plain dicts); ``${...}`` values are resolved."""
        super().__init__(**data)
        if not BUILDING.get() and templates_of(self.to_dict()):  # built directly
            given = self.model_dump(mode="json", exclude_unset=True)
            built = build_config([Layer(given, "override")] if given else [], model=type(self))
            for name in SECTION_MODELS:
                object.__setattr__(self, name, getattr(built, name))
            self._provenance = built._provenance
            self._templates = built._templates

    @model_validator(mode="after")
    def _check_driver_support(self) -> TrainingConfig:
        if self.trainer.engine == "plain" and self.callbacks.profiler.enabled:
            raise ValueError(
                "callbacks.profiler.enabled=true needs a profiling driver; the plain driver "
                "does not profile (set callbacks.profiler.enabled=false)"
            )
        return self

    # -- provenance -------------------------------------------------------------------

    def provenance_of(self, key: str) -> Provenance:
        """Where the value of ``key`` (dotted leaf path) came from."""
        flat = flatten(self.to_dict())
        if key not in flat:
            raise _unknown_key_error(key, flat)
        return self._provenance.get(key, _DEFAULT)

    @property
    def provenance(self) -> dict[str, Provenance]:
        """Provenance of every leaf, keyed by dotted path."""
        return {key: self._provenance.get(key, _DEFAULT) for key in flatten(self.to_dict())}

    def provenance_dict(self) -> dict[str, dict[str, Any]]:
        """Provenance as plain data (for checkpoints, the tracker and JSON output)."""
        return {key: prov.to_dict() for key, prov in self.provenance.items()}

    def overview_rows(self, include_defaults: bool = False) -> list[tuple[str, Any, Provenance]]:
        """``(key, value, provenance)`` per leaf; untouched defaults only if asked."""
        rows = []
        for key, value in flatten(self.to_dict()).items():
            prov = self._provenance.get(key, _DEFAULT)
            if include_defaults or not prov.is_default:
                rows.append((key, value, prov))
        return rows

    # -- mutation ---------------------------------------------------------------------

    def update(self, key: str, value: Any, reason: str | None = None) -> None:
        """Change ``key`` after loading; the value is validated and tagged ``runtime``.

        Raises:
            ConfigError: Unknown key (with a suggestion) or an invalid value.
        """
        data = self.to_dict()
        flat = flatten(data)
        known = key in flat or any(k.startswith(key + ".") for k in flat)
        if not known and not _in_free_form(key):
            raise _unknown_key_error(key, flat)
        _set_leaf(data, key, copy.deepcopy(value))
        # values interpolated from others follow them (unless this sets them itself)
        templates = {
            k: t for k, t in self._templates.items() if k != key and not k.startswith(key + ".")
        }
        for leaf, template in templates.items():
            _set_leaf(data, leaf, template)
        problems = resolve_interpolations(data)
        if problems:
            raise ConfigError(f"cannot set {key}={value!r}", issues=problems, key=key)
        try:
            fresh = type(self).model_validate(data)
        except ValidationError as exc:
            issues = [
                ConfigIssue(".".join(map(str, e["loc"])), e["msg"], "runtime")
                for e in exc.errors(include_url=False)
            ]
            raise ConfigError(f"cannot set {key}={value!r}", issues=issues, key=key) from None
        for name in SECTION_MODELS:
            object.__setattr__(self, name, getattr(fresh, name))
        self._templates = templates
        leaves = flatten(self.to_dict())
        # one entry per current leaf: an empty mapping that gained keys is no leaf any more
        self._provenance = {leaf: self._provenance.get(leaf, _DEFAULT) for leaf in leaves}
        changed = [k for k in leaves if k == key or k.startswith(key + ".")]
        for leaf in changed:
            self._provenance[leaf] = self._provenance.get(leaf, _DEFAULT).with_tag(
                "runtime", reason
            )

    def tag(self, key: str, tag: str, reason: str | None = None) -> None:
        """Add a mutation tag to ``key`` (e.g. ``resume`` for an accepted change)."""
        self._provenance[key] = self.provenance_of(key).with_tag(tag, reason)

    # -- comparison -------------------------------------------------------------------

    def config_hash(self) -> str:
        """Stable hash of the training-relevant values (run-only keys excluded)."""
        return config_hash(self.to_dict())

    def record(self) -> ConfigRecord:
        """Values, hash and provenance as plain data: what checkpoints and runs store."""
        return ConfigRecord(self.to_dict(), self.config_hash(), self.provenance_dict())

    def diff(self, other: TrainingConfig | dict[str, Any]) -> list[ConfigChange]:
        """Keys that differ from ``other`` (this is the old side), with severities."""
        return diff_configs(self.to_dict(), other)

    def validate(self) -> TrainingConfig:  # type: ignore[override]
        """Re-validate the current values; raises ConfigError listing every problem."""
        config = type(self).from_dict(self.to_dict(), self.provenance_dict())
        config._templates = dict(self._templates)  # its ${...} values still follow update()
        return config

    # -- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data (no OmegaConf, no custom objects)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], provenance: dict[str, Any] | None = None
    ) -> TrainingConfig:
        """Validate plain data; ``provenance`` is ``provenance_dict()`` output, if kept."""
        config = build_config([Layer(data, "override")], model=cls)
        stored = {k: Provenance.from_dict(v) for k, v in (provenance or {}).items()}
        config._provenance = {key: stored.get(key, _DEFAULT) for key in flatten(config.to_dict())}
        return config

    def to_yaml(self) -> str:
        """The resolved values as YAML that loads back to the same config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write values and provenance to ``path`` (YAML); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": SAVED_FORMAT,
            "config": self.to_dict(),
            "provenance": self.provenance_dict(),
            # the ${...} a value was resolved from: update() on the loaded config re-resolves it
            "templates": dict(sorted(self._templates.items())),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingConfig:
        """Read a config written by :meth:`save` (or any plain config file)."""
        path = Path(path)
        if not path.exists():
            raise ConfigFileError(f"config file not found: {path}", file=path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raw = None  # let load_config report the exact position
        if isinstance(raw, dict) and raw.get("format") == SAVED_FORMAT:
            config = cls.from_dict(raw["config"], raw.get("provenance"))
            config._templates = _saved_templates(raw.get("templates"), config, path)
            return config
        return build_config(file_layers([path], None, os.environ), model=cls, file=path)


def _saved_templates(saved: Any, config: TrainingConfig, path: Path) -> dict[str, str]:
    """The ``templates`` of a saved config (none in files written before they were kept)."""
    if saved is None:
        return {}
    flat = flatten(config.to_dict())
    if not isinstance(saved, dict) or any(
        key not in flat or not isinstance(value, str) or "${" not in value
        for key, value in saved.items()
    ):
        raise ConfigFileError(
            f"{path}: 'templates' must map config keys to their ${{...}} interpolations",
            file=path,
            key="templates",
            hint="delete the 'templates' entry: the values themselves are kept in 'config'",
        )
    return dict(saved)


def _set_leaf(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _in_free_form(key: str) -> bool:
    return key.startswith(
        ("model.kwargs.", "model.input_keys.", "data.kwargs.", "optim.scheduler_kwargs.")
    )


def _unknown_key_error(key: str, flat: dict[str, Any]) -> ConfigError:
    guess = did_you_mean(key, flat)
    hint = f"; did you mean {guess}?" if guess else ""
    return ConfigError(
        f"unknown config key '{key}'{hint}",
        key=key,
        hint="run 'trainforge config show --all' to list every key",
    )
