"""The CLI process's garbage collector: out of the way of start-up and of exit.

Importing torch leaves about 200,000 long-lived objects (modules, functions,
classes, dispatch tables). CPython's cyclic collector rescans all of them on each
full collection: three times while a ``train`` command starts (50-100 ms each),
and again while the interpreter tears down at exit (about 0.4 s with torch
loaded). None of those scans frees anything that matters: start-up objects live
for the whole process. The ``trainforge`` process therefore pauses the collector
while a command starts, and at exit collects the garbage once (running its
finalizers, as Python's own exit-time collection does) and freezes what is left,
so the interpreter's teardown does not scan it again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_collector", "settle_for_exit"]


@contextmanager
def paused_collector() -> Iterator[None]:
    """Pause cyclic garbage collection for a command's start-up; restore it after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_for_exit() -> None:
    """Collect the garbage once, then freeze the rest: the teardown skips rescanning it."""
    gc.collect()
    gc.freeze()
