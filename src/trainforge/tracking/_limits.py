"""The limits every tracking store shares: what a key, a name, a step, an id may be.

SQLite accepts almost anything; PostgreSQL refuses text holding a NUL character, strings
longer than their ``VARCHAR`` column and integers beyond 32 bits; MySQL refuses the
same lengths and ranges. Checking the strictest rules at the call, for every backend,
means the same data goes into any store, nothing a store would refuse is ever buffered,
and the error names the value and the rule instead of surfacing later as a driver error
in a background flush.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from trainforge.errors import TrackingValueError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "KEY_MAX",
    "NAME_MAX",
    "check_int",
    "check_key",
    "check_limit",
    "check_name",
    "check_text",
    "valid_id",
]

KEY_MAX = 250
"""Characters in a metric, param or tag key (the ``key`` columns)."""
NAME_MAX = 200
"""Characters in a run, project, experiment or model name, a model tag or alias."""
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
"""Range of steps, epochs, ids and limits (``INTEGER`` on PostgreSQL and MySQL)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key(key: Any, what: str = "metric key") -> str:
    """``key`` if it is 1-250 characters without control characters, else raise.

    Raises:
        TrackingValueError: Naming the key and the rule it breaks.
    """
    if not isinstance(key, str):
        raise TrackingValueError(f"{what} must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise TrackingValueError(f"{what} must not be empty")
    if len(key) > KEY_MAX:
        raise TrackingValueError(
            f"{what} {key[:40]!r}... has {len(key)} characters; at most {KEY_MAX} are allowed"
        )
    bad = _CONTROL.search(key)
    if bad is not None:
        raise TrackingValueError(
            f"{what} {key!r} holds the control character {bad.group()!r} at position "
            f"{bad.start()}; keys are printable text"
        )
    return key


def check_name(value: Any, what: str, *, limit: int = NAME_MAX, empty: bool = True) -> str:
    """``value`` if it is text of at most ``limit`` characters without NUL, else raise."""
    text = check_text(value, what)
    if not empty and not text.strip():
        raise TrackingValueError(f"{what} must not be empty")
    if len(text) > limit:
        raise TrackingValueError(
            f"{what} {text[:40]!r}... has {len(text)} characters; at most {limit} are allowed"
        )
    return text


def check_text(value: Any, what: str) -> str:
    """``value`` if it is a string without NUL characters (PostgreSQL stores none)."""
    if not isinstance(value, str):
        raise TrackingValueError(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise TrackingValueError(
            f"{what} {value[:40]!r} holds a NUL character (\\x00) at position "
            f"{value.index(chr(0))}; text in the tracking store cannot"
        )
    return value


def check_int(value: Any, what: str, key: str | None = None) -> int:
    """``value`` as an int within the 32-bit range (numpy and tensor ints too), else raise.

    Raises:
        TrackingValueError: A float, a bool, a non-number, or out of range; naming ``key``.
    """
    of = f" of {key!r}" if key is not None else ""
    if isinstance(value, bool):
        raise TrackingValueError(f"{what}{of} must be an integer, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TrackingValueError(
            f"{what}{of} must be an integer, got {type(value).__name__} {value!r}"
        ) from None
    if not INT_MIN <= number <= INT_MAX:
        raise TrackingValueError(
            f"{what}{of} is {number}; it must lie in [{INT_MIN}, {INT_MAX}] (32-bit integers)"
        )
    return number


def check_limit(limit: Any) -> int | None:
    """A row limit: None (no limit) or an integer in [0, 2**31 - 1], else raise."""
    if limit is None:
        return None
    number = check_int(limit, "limit")
    if number < 0:
        raise TrackingValueError(f"limit must be >= 0, got {number}")
    return number


def valid_id(value: Any) -> bool:
    """True when ``value`` could be the id of a row (a positive 32-bit integer)."""
    if isinstance(value, bool):
        return False
    try:
        return 1 <= operator.index(value) <= INT_MAX
    except TypeError:
        return False
