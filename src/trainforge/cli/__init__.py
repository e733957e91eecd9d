"""The ``trainforge`` command line: parsing and printing only.

Each command group lives in its own module; :func:`main` owns exit codes:
0 success, 1 a user error (clear message, no traceback), 2 a usage error.
"""

from trainforge.cli._app import app, main

__all__ = ["app", "main"]
