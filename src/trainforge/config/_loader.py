"""Layered loading with per-leaf provenance.

Layers, lowest first: schema defaults < template < preset < config files (each after the
files it ``defaults:``-includes) < environment overlays < ``TRAINFORGE__*`` variables <
CLI dotlist < programmatic overrides. OmegaConf merges the layers and resolves
``${...}``; each layer's leaves are recorded as it is applied, so the provenance of a
value is the last layer that set it. Pydantic validates the resolved plain data, and every
problem (unknown keys, wrong types, ranges, bad interpolations) is reported at once, each
with the layer that set the offending value.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from trainforge.config._compat import flatten
from trainforge.config._presets import PRESETS
from trainforge.config._schema import SECTION_MODELS
from trainforge.config._templates import load_template
from trainforge.config._yaml import parse_dotlist, read_yaml_file
from trainforge.errors import ConfigError, ConfigFileError, ConfigIssue, did_you_mean
from trainforge.logs import Provenance

__all__ = [
    "ENV_VAR_PREFIX",
    "Layer",
    "load_config",
    "parse_overrides",
    "split_cli_args",
]

ENV_VAR_PREFIX = "TRAINFORGE__"
ENV_SELECT_VAR = "TRAINFORGE_ENV"
_RESERVED = ("defaults", "environments")
_DEFAULT = Provenance("default")


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
    return "default" if any(k.startswith(prefix) for k in provenance) else None


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


def _merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Deep-merge ``layer`` into ``base`` in place (mappings merge, anything else replaces)."""
    for key, value in layer.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge_into(current, value)
        elif isinstance(value, Mapping):
            base[key] = copy.deepcopy(dict(value))
        else:
            base[key] = copy.deepcopy(value)


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
    layers: Sequence[Layer],
) -> tuple[dict[str, Any], dict[str, Provenance], list[ConfigIssue]]:
    """Merge ``layers`` over the schema defaults; return data, provenance and issues.

    Layers are merged as plain data (cheap); OmegaConf is used once, to resolve
    ``${...}`` interpolations over the merged tree.
    """
    from trainforge.config._config import default_data

    provenance: dict[str, Provenance] = {}
    data = copy.deepcopy(default_data())
    for layer in layers:
        for key in flatten(layer.data):
            provenance[key] = Provenance(layer.source_of(key))
        _merge_into(data, layer.data)
    issues: list[ConfigIssue] = []
    sections = _sections_to_resolve(data)
    if sections is None or sections:
        subset = data if sections is None else {name: data[name] for name in sections}
        try:
            resolved = OmegaConf.to_container(OmegaConf.create(subset), resolve=True)
            data.update(resolved)  # type: ignore[arg-type]
        except InterpolationResolutionError as exc:
            key = getattr(exc, "full_key", "") or ""
            first = str(exc).splitlines()[0]
            issues.append(ConfigIssue(key, first, _source_for(key, provenance)))
        except OmegaConfBaseException as exc:
            issues.append(ConfigIssue(getattr(exc, "full_key", "") or "", str(exc).splitlines()[0]))
    final = {key: provenance.get(key, _DEFAULT) for key in flatten(data)}
    return data, final, issues


def build_config(layers: Sequence[Layer], *, file: Path | None = None) -> Any:
    """Merge, resolve and validate ``layers`` into a ``TrainingConfig``."""
    from trainforge.config._config import TrainingConfig, derive_values

    data, provenance, issues = _assemble(layers)
    for key in _unknown_keys(data):
        guess = _suggest(key)
        hint = f"; did you mean {guess}?" if guess else ""
        issues.append(ConfigIssue(key, f"unknown key{hint}", _source_for(key, provenance)))
        _drop(data, key)  # keep validating the rest: report every problem at once
    for key in derive_values(data):
        provenance[key] = provenance.get(key, _DEFAULT).with_tag("derived")
    try:
        config = TrainingConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_validation_issues(exc, provenance))
    else:
        if not issues:
            config._provenance = provenance
            return config
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


def load_config(
    *files: str | Path,
    overrides: Mapping[str, Any] | None = None,
    cli: Sequence[str] = (),
    preset: str | None = None,
    template: str | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
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
    parsed: list[_ParsedFile] = []
    for file in files:
        _expand_file(Path(file), (), parsed)
    for item in parsed:
        layers.append(Layer(item.data, _file_source(_display(item.path))))
    layers.extend(_environment_layers(parsed, env or environ.get(ENV_SELECT_VAR) or None))
    layers.extend(_env_var_layers(environ))
    if cli:
        cli_files, cli_items = split_cli_args(cli)
        if cli_files:
            raise ConfigError(
                f"override '{cli_files[0]}' is not of the form key=value",
                hint="pass config files as positional files, overrides as key=value",
            )
        layers.append(Layer(parse_overrides(cli_items), "cli"))
    if overrides:
        layers.append(Layer(_nest(overrides), "override"))
    return build_config(layers, file=Path(files[-1]) if files else None)


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-or-nested mapping to nested plain data; values are taken as given."""
    root: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        node = root
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if isinstance(value, Mapping):
            value = _nest(value)
        elif isinstance(value, tuple):
            value = list(value)
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            _merge_into(node[leaf], value)
        else:
            node[leaf] = value
    return root
