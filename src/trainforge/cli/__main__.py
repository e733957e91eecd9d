"""``python -m trainforge.cli``: the same as the ``trainforge`` command."""

from trainforge.cli._app import _entry_point

_entry_point()
