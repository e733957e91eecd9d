"""One generic name -> factory registry.

Losses, collators, loggers, callbacks, storage backends and tasks all register here
through their own :class:`Registry` instance, so an unknown name always gets the same
error: the valid names and the closest match ("did you mean ...?").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from trainforge.errors import RegistryError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (classes or callables) with aliases.

    Args:
        kind: What is registered, used in error messages ("loss strategy").

    Examples:
        >>> losses = Registry[type]("loss strategy")
        >>> @losses.register("mse", aliases=("l2",))
        ... class MSE: ...
        >>> losses.get("l2") is MSE
        True
        >>> losses.list()
        ['mse']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    @overload
    def register(
        self, name: str, obj: T, *, aliases: tuple[str, ...] = ..., overwrite: bool = ...
    ) -> T: ...

    @overload
    def register(
        self, name: str, obj: None = ..., *, aliases: tuple[str, ...] = ..., overwrite: bool = ...
    ) -> Callable[[T], T]: ...

    def register(
        self,
        name: str,
        obj: T | None = None,
        *,
        aliases: tuple[str, ...] = (),
        overwrite: bool = False,
    ) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""

        def add(target: T) -> T:
            for key in (name, *aliases):
                if not overwrite and (key in self._entries or key in self._aliases):
                    raise RegistryError(
                        f"{self.kind} '{key}' is already registered",
                        hint="choose another name or pass overwrite=True",
                    )
            self._entries[name] = target
            for alias in aliases:
                self._aliases[alias] = name
            return target

        if obj is not None:
            return add(obj)
        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases."""
        canonical = self.canonical(name)
        del self._entries[canonical]
        self._aliases = {a: n for a, n in self._aliases.items() if n != canonical}

    def canonical(self, name: str) -> str:
        """Resolve an alias to its registered name, or raise RegistryError."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted([*self._entries, *self._aliases])
        guess = did_you_mean(name, known)
        message = f"unknown {self.kind} '{name}'"
        if guess:
            message += f"; did you mean '{guess}'?"
        raise RegistryError(message, hint=f"valid names: {', '.join(known) or '(none)'}")

    def get(self, name: str) -> T:
        """Return the factory registered under ``name`` or one of its aliases."""
        return self._entries[self.canonical(name)]

    def list(self) -> list[str]:
        """Registered names (aliases excluded), sorted."""
        return sorted(self._entries)

    def aliases(self) -> dict[str, str]:
        """Mapping alias -> registered name."""
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
