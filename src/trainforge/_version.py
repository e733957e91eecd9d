"""The package version, kept in one place."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trainforge")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+unknown"
