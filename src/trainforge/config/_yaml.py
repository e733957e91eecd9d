"""Reading YAML fast and strictly: libyaml's parser, OmegaConf's number rules, no duplicates.

``OmegaConf.load`` builds a DictConfig per file that the loader immediately turns back
into plain data; parsing straight to plain data with libyaml is ~10x cheaper. The loader
below keeps the two behaviours users rely on from OmegaConf: ``1e-3`` is a float (YAML 1.1
would make it a string) and a duplicated key is an error, not a silent overwrite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from trainforge.errors import ConfigError, ConfigFileError

__all__ = ["parse_dotlist", "parse_value", "read_yaml_file", "save_yaml", "set_dotted"]

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# A training config holds hundreds of values a few levels deep. YAML aliases can make a
# few lines stand for billions of values once merged (each alias becomes a copy), and
# deep nesting overflows the merge; a document past either limit is refused before any
# of that runs.
MAX_EXPANDED_NODES = 1_000_000
MAX_DEPTH = 100


class _Loader(_Base):
    """Safe loader: floats like ``1e-3``, errors on duplicate keys, alias bombs, deep nests."""

    def construct_document(self, node: yaml.Node) -> Any:
        """Refuse a document past :data:`MAX_EXPANDED_NODES` values or :data:`MAX_DEPTH`."""
        size, depth = _expanded_shape(node)
        if size > MAX_EXPANDED_NODES:  # not a YAMLError: read_yaml_file adds the file
            raise ConfigFileError(
                f"expands to {size:,} values through its YAML aliases (*name), more than "
                f"the {MAX_EXPANDED_NODES:,} a config may hold",
                hint="an alias of a list of aliases multiplies: write the values out, or "
                "nest fewer levels of anchors (&name)",
            )
        if depth > MAX_DEPTH:
            raise ConfigFileError(
                f"nests more than the {MAX_DEPTH} levels a config may",
                hint="flatten the nested lists and mappings",
            )
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing a key that appears twice."""
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_shape(root: yaml.Node) -> tuple[int, int]:
    """Nodes under ``root`` with every alias expanded, and its nesting depth.

    An aliased node is one object in the graph: measured once, counted once per use.
    The walk stops descending past :data:`MAX_DEPTH` (the depth is then reported as
    one more), so a deep document cannot overflow the stack.
    """
    shape: dict[int, tuple[int, int]] = {}
    opened: set[int] = set()  # the nodes on the path being measured

    def measure(node: yaml.Node, level: int) -> tuple[int, int]:
        known = shape.get(id(node))
        if known is not None:
            return known
        if id(node) in opened:
            raise ConfigFileError(
                "holds an alias (*name) inside its own anchor (&name): a value that "
                "contains itself never ends",
                hint="point the alias at a value defined before it, outside it",
            )
        if not isinstance(node, yaml.CollectionNode):
            return 1, 1
        if level > MAX_DEPTH:
            return 1, MAX_DEPTH + 1
        opened.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value
        size, depth = 1, 0
        for child in children:
            child_size, child_depth = measure(child, level + 1)
            size += child_size
            depth = max(depth, child_depth)
        opened.discard(id(node))
        shape[id(node)] = (size, depth + 1)
        return size, depth + 1

    return measure(root, 1)


# YAML 1.2-style floats (1e-3, -2E+5, .5), as OmegaConf reads them.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml_file(path: Path, display: str) -> dict[str, Any]:
    """Parse ``path`` to plain data; errors name the file, line and column."""
    if not path.exists():
        raise ConfigFileError(
            f"config file not found: {display}",
            file=path,
            hint="check the path; config files are YAML (.yaml/.yml)",
        )
    if path.is_dir():
        raise ConfigFileError(f"config path is a directory, not a file: {display}", file=path)
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except ConfigFileError as exc:  # an alias bomb (the loader does not know the file)
        message = f"config file {display} {exc.message}"
        raise ConfigFileError(message, file=path, hint=exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(
            f"malformed YAML in {path} at {where}: {problem}",
            file=path,
            hint="fix the YAML syntax at that line (indentation, brackets, quotes, duplicates)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read config file {display}: {exc}", file=path) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigFileError(
            f"config file {display} must hold a mapping of sections, not a {type(loaded).__name__}",
            file=path,
        )
    return loaded


def parse_value(text: str) -> Any:
    """A command-line value, read as YAML (``3e-4`` -> float, ``[1,2]`` -> list)."""
    if text == "":
        return ""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text  # not YAML: keep the literal string


def parse_dotlist(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=3e-4", ...]`` to nested data (later items win)."""
    root: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                f"override '{item}' is not of the form key=value",
                hint="write overrides as section.key=value, e.g. optim.lr=3e-4",
            )
        set_dotted(root, key, parse_value(value))
    return root


def set_dotted(root: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set ``root["a"]["b"] = value`` for the key ``"a.b"`` (creating mappings on the way).

    Returns:
        The mapping that received the leaf.
    """
    *parents, leaf = key.split(".")
    node = root
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value
    return node


def save_yaml(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as OmegaConf writes it (the ``hparams.yaml`` of Lightning's loggers)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import UnsupportedValueType, ValidationError

    with Path(path).open("w", encoding="utf-8") as file:
        try:
            OmegaConf.save(data, file)
            return
        except (UnsupportedValueType, ValidationError):
            pass
    with Path(path).open("w", encoding="utf-8") as file:
        yaml.dump(data, file)
