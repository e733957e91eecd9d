"""``configure_logging``: one idempotent switch for level, format and destination."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["configure_logging", "get_logger", "rank_zero_only", "set_process_label"]

ROOT_LOGGER = "trainforge"
_HANDLER_MARK = "_trainforge_handler"
Format = Literal["text", "json", "rich"]
F = TypeVar("F", bound=Callable[..., Any])


_PROCESS: dict[str, str] = {"label": ""}
"""``node N rank R`` of this process in a run of several (empty for one process)."""


def set_process_label(label: str) -> None:
    """Name this process in every log line (``node 1 rank 3``; empty: one process, no name)."""
    _PROCESS["label"] = label


class _ProcessLabel(logging.Filter):
    """Gives each record ``tf_process``: ``[node N rank R] `` or nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        label = _PROCESS["label"]
        record.tf_process = f"[{label}] " if label else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; a section record carries its rows as data."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single-line JSON object."""
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
        }
        section = getattr(record, "tf_section", None)
        if _PROCESS["label"]:
            payload["process"] = _PROCESS["label"]
        if section is not None:
            payload.update(section)
        else:
            payload["message"] = record.getMessage()
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(
            f"unknown log level '{level}'; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    return value


def _make_handler(fmt: Format, file: str | Path | None) -> logging.Handler:
    if fmt == "rich" and file is None:
        from rich.console import Console
        from rich.logging import RichHandler

        return RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    handler: logging.Handler
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_ProcessLabel())
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(tf_process)s%(name)s: %(message)s", "%H:%M:%S"
            )
        )
    return handler


def configure_logging(
    level: int | str = "INFO",
    fmt: Format = "text",
    file: str | Path | None = None,
) -> logging.Logger:
    """Configure the ``trainforge`` logger; calling it again replaces, never duplicates.

    Args:
        level: A level name or number; ``TRAINFORGE_LOG_LEVEL`` is not consulted here,
            callers (CLI, ``run.log_level``) decide.
        fmt: ``text`` (aligned lines), ``json`` (one object per record) or ``rich``.
        file: Also write records to this file (same format; rich becomes text there).

    Returns:
        The configured ``trainforge`` logger.
    """
    if fmt not in ("text", "json", "rich"):
        raise ValueError(f"unknown log format '{fmt}'; use text, json or rich")
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
            handler.close()
    handlers = [_make_handler(fmt, None)]
    if file is not None:
        handlers.append(_make_handler("json" if fmt == "json" else "text", file))
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logger.setLevel(_level(level))
    logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    """The logger for a trainforge module (``logging.getLogger`` under ``trainforge``)."""
    return logging.getLogger(name if name.startswith(ROOT_LOGGER) else f"{ROOT_LOGGER}.{name}")


def _rank() -> int:
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(var)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def rank_zero_only(fn: F) -> F:
    """Decorate ``fn`` so it runs on global rank zero only (returns None elsewhere)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _rank() == 0:
            return fn(*args, **kwargs)
        return None

    wrapper.__name__ = getattr(fn, "__name__", "wrapper")
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]
