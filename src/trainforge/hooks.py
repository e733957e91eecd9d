"""Event hooks: let user code react to checkpoint and training events.

One channel: every event goes through a :class:`HookManager`. A hook is either

- a function registered for events (``manager.register(event, fn)``), called with one
  :class:`HookContext` (``ctx.event``, ``ctx["epoch"]``, ...), or
- an object registered whole (``manager.register_object(obj)``, or
  ``Trainer(hooks=obj)``), whose methods are named ``"on_" + event.value``
  (``on_epoch_end``) and are called with the event's payload as keyword arguments; a
  method receives only the payload names it declares (or all of them with ``**kwargs``).

Hooks run in priority order (higher first; ties in registration order). A failing hook
is logged and isolated so one broken notification never kills a training run, unless the
manager was built with ``raise_on_error=True``. Coroutine hooks are awaited.

Every event, its method name and its payload (both drivers fire the training events at
the same moments, on global rank zero only):

- ``ON_TRAIN_START``: run_id, run_dir, config
- ``ON_EPOCH_START``: epoch
- ``ON_BATCH_END``: global_step, epoch (after every optimizer step)
- ``ON_VALIDATION_END``: epoch, metrics
- ``ON_EPOCH_END``: epoch, metrics, checkpoint_path (None if none)
- ``ON_TRAIN_END``: results
- ``ON_GRADIENT_ANOMALY``: health, step, consecutive_failures
- ``ON_ALERT``: alert
- ``BEFORE_CHECKPOINT_SAVE``: epoch, global_step, metrics
- ``AFTER_CHECKPOINT_SAVE``: path, metrics
- ``ON_BEST_CHECKPOINT``: path, metric
- ``ON_CHECKPOINT_DELETED``: path, epoch
- ``ON_RETENTION_APPLIED``: kept, deleted
- ``BEFORE_CHECKPOINT_LOAD``: path
- ``AFTER_CHECKPOINT_LOAD``: path, epoch
- ``BEFORE_INTEGRITY_CHECK``: path
- ``AFTER_INTEGRITY_CHECK``: path, ok
- ``ON_CHECKPOINT_CORRUPTED``: path, error
- ``ON_RESUME``: path, changes, ...
- ``ON_MIGRATION``: path, from_version, ...

The method of an event is ``HookEvent.X.method_name`` (``on_training_start``,
``on_epoch_end``, ``on_before_checkpoint_save``, ...).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Union

from trainforge.errors import HookError

__all__ = [
    "HookContext",
    "HookEvent",
    "HookHandle",
    "HookManager",
    "HookResult",
]

logger = logging.getLogger(__name__)


class HookEvent(str, enum.Enum):
    """Every event trainforge fires."""

    BEFORE_CHECKPOINT_SAVE = "before_checkpoint_save"
    AFTER_CHECKPOINT_SAVE = "after_checkpoint_save"
    BEFORE_CHECKPOINT_LOAD = "before_checkpoint_load"
    AFTER_CHECKPOINT_LOAD = "after_checkpoint_load"
    BEFORE_INTEGRITY_CHECK = "before_integrity_check"
    AFTER_INTEGRITY_CHECK = "after_integrity_check"
    ON_BEST_CHECKPOINT = "best_checkpoint"
    ON_CHECKPOINT_DELETED = "checkpoint_deleted"
    ON_RETENTION_APPLIED = "retention_applied"
    ON_CHECKPOINT_CORRUPTED = "checkpoint_corrupted"
    ON_RESUME = "resume"
    ON_MIGRATION = "migration"
    ON_TRAIN_START = "training_start"
    ON_TRAIN_END = "training_end"
    ON_EPOCH_START = "epoch_start"
    ON_BATCH_END = "batch_end"
    ON_EPOCH_END = "epoch_end"
    ON_VALIDATION_END = "validation_end"
    ON_GRADIENT_ANOMALY = "gradient_anomaly"
    ON_ALERT = "alert"

    @property
    def method_name(self) -> str:
        """Name of the method a class hook defines for this event."""
        return f"on_{self.value}"


@dataclass
class HookContext:
    """What a hook receives: the event and its payload (paths, metrics, epoch, ...)."""

    event: HookEvent
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Payload value for ``key`` or ``default``."""
        return self.data.get(key, default)


HookFn = Callable[[HookContext], Union[Awaitable[None], None]]


@dataclass(frozen=True)
class HookHandle:
    """Returned by :meth:`HookManager.register`; pass it to ``unregister``."""

    id: int
    events: tuple[HookEvent, ...]
    name: str


@dataclass
class HookResult:
    """Outcome of one ``fire``: how many hooks ran and which failed (name, exception)."""

    event: HookEvent
    called: int = 0
    failures: list[tuple[str, BaseException]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every hook succeeded."""
        return not self.failures


@dataclass
class _Entry:
    id: int
    fn: HookFn
    priority: int
    name: str


class HookManager:
    """Registry of hooks per event, fired in priority order with failure isolation.

    Args:
        raise_on_error: Re-raise a failing hook's exception as :class:`HookError`
            (after logging it) instead of isolating it.
    """

    def __init__(self, *, raise_on_error: bool = False) -> None:
        self.raise_on_error = raise_on_error
        self._hooks: dict[HookEvent, list[_Entry]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def register(
        self,
        events: HookEvent | str | Iterable[HookEvent | str],
        hook: HookFn | None = None,
        *,
        priority: int = 0,
        name: str | None = None,
    ) -> Any:
        """Register ``hook`` for one or several events; without ``hook``, a decorator.

        Returns:
            A :class:`HookHandle` (or, as a decorator, the function unchanged with the
            handle stored in its ``__trainforge_hook__`` attribute).
        """
        event_list = _as_events(events)

        def add(fn: HookFn) -> HookHandle:
            label = name or getattr(fn, "__qualname__", None) or repr(fn)
            with self._lock:
                entry = _Entry(next(self._ids), fn, priority, label)
                for event in event_list:
                    bucket = self._hooks.setdefault(event, [])
                    bucket.append(entry)
                    # sort is stable: equal priorities keep registration order
                    bucket.sort(key=lambda e: -e.priority)
            return HookHandle(entry.id, tuple(event_list), label)

        if hook is not None:
            return add(hook)

        def decorator(fn: HookFn) -> HookFn:
            fn.__trainforge_hook__ = add(fn)  # type: ignore[attr-defined]
            return fn

        return decorator

    def register_object(self, obj: object, *, priority: int = 0) -> list[HookHandle]:
        """Register every ``on_<event>`` method of ``obj``; each gets the payload as keywords.

        Raises:
            HookError: ``obj`` defines none of the methods (the names it could define).
        """
        handles = []
        for event in HookEvent:
            method = getattr(obj, event.method_name, None)
            if callable(method):
                label = f"{type(obj).__qualname__}.{event.method_name}"
                caller = _keyword_caller(method)
                handles.append(self.register(event, caller, priority=priority, name=label))
        if not handles:
            names = ", ".join(e.method_name for e in HookEvent)
            raise HookError(
                f"{type(obj).__qualname__} defines no hook method",
                hint=f"define one of: {names}",
            )
        return handles

    def unregister(self, handle: HookHandle | Iterable[HookHandle]) -> None:
        """Remove a hook (or several) registered earlier."""
        handles = [handle] if isinstance(handle, HookHandle) else list(handle)
        ids = {h.id for h in handles}
        with self._lock:
            for event, bucket in self._hooks.items():
                self._hooks[event] = [e for e in bucket if e.id not in ids]

    def hooks_for(self, event: HookEvent | str) -> list[str]:
        """Names of the hooks registered for ``event``, in the order they run."""
        return [e.name for e in self._hooks.get(HookEvent(event), [])]

    def has_hooks(self, event: HookEvent | str) -> bool:
        """True when at least one hook listens to ``event`` (lets callers skip work)."""
        key = event if event.__class__ is HookEvent else HookEvent(event)  # asked every step
        return bool(self._hooks.get(key))

    def fire(self, event: HookEvent | str, **data: Any) -> HookResult:
        """Run every hook of ``event`` with ``data`` as payload; await coroutine hooks."""
        event = HookEvent(event)
        result = HookResult(event)
        entries = list(self._hooks.get(event, ()))
        if not entries:
            return result
        context = HookContext(event, data)
        for entry in entries:
            result.called += 1
            try:
                outcome = entry.fn(context)
                if inspect.isawaitable(outcome):
                    _await(outcome)
            except Exception as exc:
                result.failures.append((entry.name, exc))
                logger.error("hook %s failed on %s: %s", entry.name, event.value, exc, exc_info=exc)
                if self.raise_on_error:
                    raise HookError(
                        f"hook '{entry.name}' failed on event '{event.value}': {exc}",
                        hint="fix the hook, or use HookManager(raise_on_error=False) to isolate it",
                    ) from exc
        return result

    def clear(self) -> None:
        """Remove every hook."""
        with self._lock:
            self._hooks.clear()


def _keyword_caller(method: Callable[..., Any]) -> HookFn:
    """Adapt a hook object's method to a context hook: payload in, as keyword arguments."""
    parameters = inspect.signature(method).parameters.values()
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    names = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }

    def call(context: HookContext) -> Any:
        data = context.data
        return method(**(data if takes_all else {k: v for k, v in data.items() if k in names}))

    return call


def _as_events(events: HookEvent | str | Iterable[HookEvent | str]) -> list[HookEvent]:
    if isinstance(events, (HookEvent, str)):
        events = [events]
    out = []
    for event in events:
        try:
            out.append(HookEvent(event))
        except ValueError:
            valid = ", ".join(e.value for e in HookEvent)
            raise HookError(
                f"unknown hook event '{event}'", hint=f"valid events: {valid}"
            ) from None
    return out


def _await(awaitable: Awaitable[Any]) -> None:
    """Run a coroutine to completion, also when called from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_as_coroutine(awaitable))
        return
    # A loop is running in this thread: finish the coroutine on a helper thread's loop.
    error: list[BaseException] = []

    def runner() -> None:
        try:
            asyncio.run(_as_coroutine(awaitable))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=runner, name="trainforge-async-hook")
    thread.start()
    thread.join()
    if error:
        raise error[0]


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
