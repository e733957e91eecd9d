"""Merging, interpolation and validation: layers in, a validated config with provenance out.

Layers, lowest first, are merged as plain data over the schema defaults; each layer's
leaves are recorded as it is applied, so the provenance of a value is the last layer that
set it. OmegaConf resolves ``${...}`` once over the merged tree. Pydantic validates the
resolved plain data, and every problem (unknown keys with a "did you mean", wrong types,
ranges, bad interpolations) is reported at once, each with the layer that set the
offending value.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from trainforge.config._layers import Layer, merge_into
from trainforge.config._schema import SECTION_MODELS, SchemaBase
from trainforge.errors import ConfigError, ConfigIssue, did_you_mean
from trainforge.logs import Provenance
from trainforge.records import flatten

__all__ = [
    "BUILDING",
    "build_config",
    "default_data",
    "derive_values",
    "resolve_interpolations",
    "schema_paths",
    "templates_of",
]

_DEFAULT = Provenance("default")

# True while build_config validates: the config's constructor must not resolve again
BUILDING: ContextVar[bool] = ContextVar("BUILDING", default=False)

Config = TypeVar("Config", bound=SchemaBase)


@functools.cache
def default_data(model: type[SchemaBase]) -> dict[str, Any]:
    """The schema defaults of ``model`` as plain data (the lowest layer); do not mutate it.

    Built field by field, so ``${...}`` defaults stay unresolved (``TrainingConfig()``
    itself resolves them).
    """
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        factory = field.default_factory
        value = factory() if factory is not None else field.default  # type: ignore[call-arg]
        data[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return data


def templates_of(data: Mapping[str, Any]) -> dict[str, str]:
    """Every leaf of ``data`` holding a ``${...}`` interpolation, by dotted key."""
    return {
        key: value
        for key, value in flatten(data).items()
        if isinstance(value, str) and "${" in value
    }


def resolve_interpolations(data: dict[str, Any]) -> list[ConfigIssue]:
    """Resolve every ``${...}`` of ``data`` in place; return the problems (if any)."""
    sections = _sections_to_resolve(data)
    if sections is not None and not sections:
        return []
    subset = data if sections is None else {name: data[name] for name in sections}
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(subset), resolve=True)
        data.update(resolved)  # type: ignore[arg-type]
    except InterpolationResolutionError as exc:
        key = getattr(exc, "full_key", "") or ""
        return [ConfigIssue(key, str(exc).splitlines()[0])]
    except OmegaConfBaseException as exc:
        return [ConfigIssue(getattr(exc, "full_key", "") or "", str(exc).splitlines()[0])]
    return []


def derive_values(data: dict[str, Any]) -> list[str]:
    """Fill values computed from others, in place; returns the keys it derived."""
    derived = []
    section = data.get("data")
    if isinstance(section, dict) and section.get("val_batch_size") is None:
        batch = section.get("batch_size")
        if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0:
            section["val_batch_size"] = batch
            derived.append("data.val_batch_size")
    return derived


def _schema_paths() -> list[str]:
    paths: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}.{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, path)
            else:
                paths.append(path)

    for section, model in SECTION_MODELS.items():
        walk(model, section)
    return paths


_SCHEMA_PATHS: list[str] | None = None


def schema_paths() -> list[str]:
    """Every valid leaf key of the schema (dotted), e.g. ``optim.lr``."""
    global _SCHEMA_PATHS
    if _SCHEMA_PATHS is None:
        _SCHEMA_PATHS = _schema_paths()
    return _SCHEMA_PATHS


def _add_unknown(unknown: list[str], path: str, value: Any) -> None:
    # report full leaf paths ("optm.lr", not "optm") so the suggestion can be exact
    if isinstance(value, Mapping) and value:
        unknown.extend(flatten(value, path))
    else:
        unknown.append(path)


def _unknown_keys(data: Mapping[str, Any]) -> list[str]:
    unknown: list[str] = []

    def walk(node: Any, model: type[BaseModel], prefix: str) -> None:
        if not isinstance(node, Mapping):
            return
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            field = model.model_fields.get(str(key))
            if field is None:
                _add_unknown(unknown, path, value)
                continue
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(value, annotation, path)

    for key, value in data.items():
        model = SECTION_MODELS.get(str(key))
        if model is None:
            _add_unknown(unknown, str(key), value)
        else:
            walk(value, model, str(key))
    return unknown


def _drop(data: dict[str, Any], key: str) -> None:
    parts = key.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def _source_for(key: str, provenance: Mapping[str, Provenance]) -> str | None:
    """The layer(s) that set ``key``; for a whole section, every non-default layer in it."""
    if key in provenance:
        return provenance[key].source
    prefix = key + "." if key else ""
    sources = sorted(
        {p.source for k, p in provenance.items() if k.startswith(prefix) and not p.is_default}
    )
    if sources:
        return ", ".join(sources)
    if any(k.startswith(prefix) for k in provenance):
        return "default"
    parent = key  # an element of a list value (optim.betas.0): the list's source
    while "." in parent:
        parent = parent.rsplit(".", 1)[0]
        if parent in provenance:
            return provenance[parent].source
    return None


# Common names from other tools, mapped to ours: checked before fuzzy matching.
_SYNONYMS = {
    "learning_rate": "lr",
    "learning_rat": "lr",
    "lr_rate": "lr",
    "wd": "weight_decay",
    "epochs": "max_epochs",
    "num_epochs": "max_epochs",
    "steps": "max_steps",
    "batchsize": "batch_size",
    "bs": "batch_size",
    "optimizer": "name",
    "grad_clip": "gradient_clip_val",
    "clip_grad_norm": "gradient_clip_val",
    "accumulate": "accumulate_grad_batches",
    "gradient_accumulation_steps": "accumulate_grad_batches",
    "workers": "num_workers",
}


# top-level keys that are another tool's flag for a config file, not a config section
_FILE_FLAGS = frozenset({"config", "config_file", "config_path", "cfg", "config_name"})
_INCLUDE_KEYS = frozenset({"include", "includes", "import", "imports", "extends", "inherit"})


def _suggest(key: str) -> str | None:
    paths = schema_paths()
    if "." in key:
        section, leaf = key.rsplit(".", 1)
        synonym = _SYNONYMS.get(leaf.lower())
        if synonym and f"{section}.{synonym}" in paths:
            return f"{section}.{synonym}"
    sections = list(SECTION_MODELS)
    guess = did_you_mean(key, [*paths, *sections])
    if guess is None and "." in key:
        # the leaf name alone, matched within any section: 'optim.learning_rat' -> 'optim.lr'?
        leaf = key.rsplit(".", 1)[1]
        by_leaf = {p.rsplit(".", 1)[1]: p for p in paths if p.startswith(key.split(".")[0] + ".")}
        match = did_you_mean(leaf, by_leaf)
        guess = by_leaf[match] if match else None
    return guess


_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def _interpolations(node: Any) -> list[str]:
    """Every ``${...}`` body inside ``node``."""
    if isinstance(node, str):
        return _REFERENCE.findall(node) if "${" in node else []
    if isinstance(node, dict):
        return [ref for value in node.values() for ref in _interpolations(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _interpolations(value)]
    return []


def _sections_to_resolve(data: dict[str, Any]) -> list[str] | None:
    """Top-level sections OmegaConf must see to resolve every interpolation.

    Building a DictConfig of the whole tree is most of the cost of loading, so only the
    sections holding ``${...}`` and those they reference (transitively) are handed to
    OmegaConf. ``None`` means "all of it": a resolver (``${oc.env:...}``) or a relative
    reference (``${..x}``) is left entirely to OmegaConf.
    """
    pending = [name for name, value in data.items() if _interpolations(value)]
    needed: set[str] = set()
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        for ref in _interpolations(data.get(name)):
            ref = ref.strip()
            if ":" in ref or ref.startswith(".") or "$" in ref:
                return None
            target = ref.split(".")[0].split("[")[0]
            if target in data and target not in needed:
                pending.append(target)
    return [name for name in data if name in needed]


def _assemble(
    layers: Sequence[Layer], model: type[SchemaBase]
) -> tuple[dict[str, Any], dict[str, Provenance], list[ConfigIssue], dict[str, str]]:
    """Merge ``layers`` over the schema defaults; return data, provenance and issues.

    Layers are merged as plain data (cheap); OmegaConf is used once, to resolve
    ``${...}`` interpolations over the merged tree.
    """
    provenance: dict[str, Provenance] = {}
    data = copy.deepcopy(default_data(model))
    for layer in layers:
        for key in flatten(layer.data):
            provenance[key] = Provenance(layer.source_of(key))
        merge_into(data, layer.data)
    templates = templates_of(data)
    issues = [
        ConfigIssue(issue.key, issue.message, _source_for(issue.key, provenance))
        if issue.key
        else issue
        for issue in resolve_interpolations(data)
    ]
    final = {key: provenance.get(key, _DEFAULT) for key in flatten(data)}
    return data, final, issues, templates


def build_config(
    layers: Sequence[Layer], *, model: type[Config], file: Path | None = None
) -> Config:
    """Merge, resolve and validate ``layers`` into a ``model`` (a ``TrainingConfig``).

    Raises:
        ConfigError: Every problem, each with its key and the layer that set it.
    """
    data, provenance, issues, templates = _assemble(layers, model)
    for key in _unknown_keys(data):
        guess = _suggest(key)
        hint = f"; did you mean {guess}?" if guess else ""
        if key in _FILE_FLAGS:  # `--config file.yaml`, as other trainers spell it
            hint = "; a config file is given by its path alone: trainforge train path/to/file.yaml"
        elif key.split(".")[0] in _INCLUDE_KEYS:  # as other config systems spell it
            hint = "; a config file includes others with defaults: [base.yaml, ...]"
        issues.append(ConfigIssue(key, f"unknown key{hint}", _source_for(key, provenance)))
        _drop(data, key)  # keep validating the rest: report every problem at once
    for key in derive_values(data):
        provenance[key] = provenance.get(key, _DEFAULT).with_tag("derived")
    token = BUILDING.set(True)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        issues.extend(_validation_issues(exc, provenance))
    else:
        if not issues:
            config._provenance = provenance  # type: ignore[attr-defined]
            if hasattr(config, "_templates"):
                config._templates = templates  # re-resolved by TrainingConfig.update
            return config
    finally:
        BUILDING.reset(token)
    count = len(issues)
    raise ConfigError(
        f"invalid configuration: {count} problem{'s' if count != 1 else ''}",
        issues=issues,
        file=file,
        hint="run 'trainforge config show --all' to see every key and where it was set",
    )


def _validation_issues(
    exc: ValidationError, provenance: Mapping[str, Provenance]
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        if error["type"] == "extra_forbidden":
            continue  # unknown keys are reported (with suggestions) before validation
        loc = [str(p) for p in error["loc"]]
        # pydantic appends the union member / validator name for some errors; drop those
        while loc and loc[-1] not in _known_tail(loc):
            loc.pop()
        key = ".".join(loc)
        message = error["msg"]
        if error["type"] not in ("missing", "value_error", "assertion_error"):
            message = f"{message} (got {error.get('input')!r})"
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        issues.append(ConfigIssue(key, message, _source_for(key, provenance)))
    return issues


def _known_tail(loc: list[str]) -> set[str]:
    """Names valid as the last component of ``loc`` (fields of its parent model)."""
    model: Any = None
    for i, part in enumerate(loc):
        if i == 0:
            model = SECTION_MODELS.get(part)
        elif model is not None and i < len(loc) - 1:
            field = model.model_fields.get(part)
            annotation = field.annotation if field else None
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )
        if model is None:
            return {loc[-1]}  # free-form mapping: accept as is
    if len(loc) == 1:
        return {loc[0]}
    return set(model.model_fields) if model is not None else {loc[-1]}
