"""The CLI process's garbage collector: out of the way of start-up and of exit.

Importing torch leaves about 200,000 long-lived objects (modules, functions,
classes, dispatch tables). CPython's cyclic collector rescans all of them on each
full collection: three times while a ``train`` command starts (50-100 ms each),
more while a run sets up (150-200 ms each once the model and optimizer are built),
and again while the interpreter tears down at exit (about 0.4 s with torch loaded).
None of those scans frees anything that matters: start-up objects live for the whole
process. So ``train`` pauses the collector while it starts; in the ``trainforge``
process itself (not where ``main`` is called from Python), the pause ends by
collecting the garbage once and freezing the survivors, which later collections then
skip, and exit does the same, so the interpreter's teardown does not scan them again.
Each collection first runs the finalizers of whatever is garbage, as Python's own
exit-time collection does.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["claim_process", "collect_and_freeze", "paused_collector"]

_claimed = False


def claim_process() -> None:
    """Mark this process as the ``trainforge`` command's own: start-up survivors get frozen."""
    global _claimed
    _claimed = True


@contextmanager
def paused_collector() -> Iterator[None]:
    """Pause cyclic garbage collection for a command's start-up; restore it after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _claimed:
                collect_and_freeze()
            gc.enable()


def collect_and_freeze() -> None:
    """Collect the garbage once, then freeze the rest: later scans skip it."""
    gc.collect()
    gc.freeze()
