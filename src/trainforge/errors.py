"""The trainforge exception hierarchy.

Every error a user can cause is a :class:`TrainforgeError`. Each carries a user-facing
message that says what went wrong, where (file, key, line, path) and how to fix it; the
CLI prints that message and exits 1 without a traceback. Domain errors also subclass the
matching builtin, so ``except FileNotFoundError`` keeps working for callers who do not
know trainforge::

    TrainforgeError
    ├── ConfigError (ValueError)                 one or more config problems, all at once
    │   └── ConfigFileError                      a file that cannot be read or parsed
    ├── RegistryError (KeyError)                 unknown name in a registry ("did you mean")
    ├── HookError (RuntimeError)                 a hook failed and the manager was told to raise
    ├── CheckpointError
    │   ├── CheckpointCorruptedError (ValueError)    hash / size / manifest mismatch, bad field
    │   ├── CheckpointNotFoundError (FileNotFoundError)
    │   ├── CheckpointRankingError (ValueError)      monitor / mode differ from the recorded ones
    │   ├── CheckpointSaveError (OSError)            disk full, permission denied, ...
    │   ├── UnsafeCheckpointError (ValueError)       pickle that would run code
    │   └── ResumeError (ValueError)                 config / model mismatch on resume
    ├── TrackingError
    │   ├── StoreUnavailableError (ConnectionError)  database cannot be opened
    │   ├── RunNotFoundError (KeyError)
    │   ├── ModelNotFoundError (KeyError)
    │   ├── TrackingValueError (ValueError)          a key, name, step or limit no store can hold
    │   ├── FilterSyntaxError (ValueError)           search filter with the position
    │   ├── JobNotFoundError (KeyError)              no job with the given id
    │   ├── JobStateError (ValueError)               cancel / retry a job in the wrong state
    │   ├── ScheduleError (ValueError)               bad cron expression, time zone, catch-up
    │   └── ScheduleNotFoundError (KeyError)
    ├── JobFailedError (RuntimeError)            a job's work failed (exit code, exception)
    ├── TrainingError (RuntimeError)
    │   └── GradientHealthError                      N consecutive unhealthy steps
    ├── AccumulationConflictError (ValueError)   Lightning and the accumulator both accumulate
    ├── ImportPathError (ImportError)            'pkg.module:Name' that does not import
    ├── UiServerError (OSError)                  `trainforge ui` cannot listen (port taken)
    ├── UiRequestError (ValueError)              a UI API query string it cannot use (400)
    ├── AttentionPatchError (RuntimeError)       model.sdpa=on and a layer cannot use SDPA
    │   └── AlreadyFusedError                    a patcher's signal: the layer runs SDPA already
    ├── ExportError (ValueError)                 unknown format, no format exports, bad bundle
    │   └── BundleExistsError (FileExistsError)  the bundle folder exists (no --overwrite)
    └── MissingDependencyError (ImportError)     optional package absent: names the extra
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "AccumulationConflictError",
    "AlreadyFusedError",
    "AttentionPatchError",
    "BundleExistsError",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointRankingError",
    "CheckpointSaveError",
    "ConfigError",
    "ConfigFileError",
    "ConfigIssue",
    "ExportError",
    "FilterSyntaxError",
    "GradientHealthError",
    "HookError",
    "ImportPathError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "RegistryError",
    "ResumeError",
    "RunNotFoundError",
    "ScheduleError",
    "ScheduleNotFoundError",
    "StoreUnavailableError",
    "TrackingError",
    "TrackingValueError",
    "TrainforgeError",
    "TrainingError",
    "UiRequestError",
    "UiServerError",
    "UnsafeCheckpointError",
    "did_you_mean",
]


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """Return the closest of ``choices`` to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return matches[0] if matches else None


class TrainforgeError(Exception):
    """Base of every error a trainforge user can cause.

    Args:
        message: What went wrong and how to fix it, in words a user understands.
        file: The file involved, if any.
        key: The config key involved (dotted path), if any.
        path: The filesystem path involved (checkpoint, database), if any.
        hint: One sentence on how to fix it, appended to the message.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        key: str | None = None,
        path: str | Path | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        self.path = str(path) if path is not None else None
        self.hint = hint
        super().__init__(self.user_message())

    def user_message(self) -> str:
        """The full message shown to a user: what, where and how to fix."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def __str__(self) -> str:
        return self.user_message()

    def __reduce__(self):  # keep pickling (multiprocessing) working with keyword fields
        return (
            _rebuild_error,
            (type(self), self.message, self.file, self.key, self.path, self.hint, self.__dict__),
        )


def _rebuild_error(cls, message, file, key, path, hint, state):
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, message)
    return err


class ConfigIssue:
    """One problem found in a configuration: key path, message and where it came from."""

    __slots__ = ("key", "message", "source")

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key = key
        self.message = message
        self.source = source

    def __str__(self) -> str:
        where = f" (set by {self.source})" if self.source else ""
        label = self.key or "<root>"
        return f"{label}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"ConfigIssue(key={self.key!r}, message={self.message!r}, source={self.source!r})"


class ConfigError(TrainforgeError, ValueError):
    """A configuration is invalid; lists every problem found, not just the first."""

    def __init__(
        self,
        message: str,
        *,
        issues: Iterable[ConfigIssue] = (),
        file: str | Path | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.issues = list(issues)
        super().__init__(message, file=file, key=key, hint=hint)

    def user_message(self) -> str:
        """The message followed by one line per problem."""
        lines = [self.message]
        lines.extend(f"  - {issue}" for issue in self.issues)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class ConfigFileError(ConfigError):
    """A config file is missing, unreadable, malformed YAML, or part of an include cycle."""


class RegistryError(TrainforgeError, KeyError):
    """A name is not registered; the message lists the valid names and the closest one."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.user_message()


class HookError(TrainforgeError, RuntimeError):
    """A hook raised and its manager was configured to propagate failures."""


class CheckpointError(TrainforgeError):
    """Base of checkpoint problems."""


class CheckpointCorruptedError(CheckpointError, ValueError):
    """A checkpoint file does not match its manifest (hash, size, missing, garbled)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        expected: str | None = None,
        actual: str | None = None,
        alternative: str | Path | None = None,
        searched: bool = False,
        hint: str | None = None,
    ) -> None:
        self.expected, self.actual = expected, actual
        self.alternative = str(alternative) if alternative is not None else None
        self.searched = searched or alternative is not None  # for another valid checkpoint
        super().__init__(message, path=path, hint=hint)

    def user_message(self) -> str:
        """Message with expected/actual hash and the newest valid alternative."""
        lines = [self.message]
        if self.expected is not None or self.actual is not None:
            lines.append(f"  expected sha256: {self.expected}")
            lines.append(f"  actual sha256:   {self.actual}")
        if self.alternative:
            lines.append(f"  newest valid alternative: {self.alternative}")
            lines.append("  load it explicitly, or pass fallback=True to load it automatically")
        elif self.searched:  # a lone file has no alternatives to look for
            lines.append("  no valid alternative checkpoint was found")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint exists at the given path or pointer."""

    def __str__(self) -> str:
        return self.user_message()


class CheckpointRankingError(CheckpointError, ValueError):
    """Checkpoints cannot be ranked as asked.

    The monitor or mode given differ from the ones the checkpoints recorded, or the
    checkpoints of one directory recorded different ones.
    """


class CheckpointSaveError(CheckpointError, OSError):
    """Writing a checkpoint failed; the previous checkpoint is untouched."""

    def __str__(self) -> str:
        return self.user_message()


class UnsafeCheckpointError(CheckpointError, ValueError):
    """A checkpoint holds pickled objects that are not on the allow-list."""


class ResumeError(CheckpointError, ValueError):
    """Resuming is refused: the config or the model does not match the checkpoint."""


class TrackingError(TrainforgeError):
    """Base of tracking store problems."""


class StoreUnavailableError(TrackingError, ConnectionError):
    """The tracking database cannot be opened or written."""


class RunNotFoundError(TrackingError, KeyError):
    """No run with the given id."""

    def __str__(self) -> str:
        return self.user_message()


class ModelNotFoundError(TrackingError, KeyError):
    """No registered model with the given id, or name and tag."""

    def __str__(self) -> str:
        return self.user_message()


class TrackingValueError(TrackingError, ValueError):
    """A value no tracking store can hold or answer, refused before it reaches one.

    A metric key that is empty, too long or holds control characters, a step outside the
    integer range, a name too long for its column, text with a NUL character, a negative
    limit; or a value the database itself refused.
    """


class FilterSyntaxError(TrackingError, ValueError):
    """A search filter does not parse; the message points at the position."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        self.text = text
        self.position = position
        super().__init__(message)

    def user_message(self) -> str:
        """The message, the filter, and a caret under the offending position."""
        caret = " " * self.position + "^"
        return f"{self.message} at position {self.position}\n  {self.text}\n  {caret}"


class JobNotFoundError(TrackingError, KeyError):
    """No job with the given id."""

    def __str__(self) -> str:
        return self.user_message()


class JobStateError(TrackingError, ValueError):
    """A job cannot do what was asked in its current state (cancel a finished job, ...)."""


class ScheduleError(TrackingError, ValueError):
    """A schedule cannot be created as given: cron expression, time zone, catch-up, name."""


class ScheduleNotFoundError(TrackingError, KeyError):
    """No schedule with the given name or id."""

    def __str__(self) -> str:
        return self.user_message()


class JobFailedError(TrainforgeError, RuntimeError):
    """The work of a job failed: the training process exited non-zero, or the job raised."""


class TrainingError(TrainforgeError, RuntimeError):
    """Training cannot continue."""


class GradientHealthError(TrainingError):
    """Gradients were unhealthy for too many consecutive steps."""


class AccumulationConflictError(TrainforgeError, ValueError):
    """Both Lightning (``trainer.accumulate_grad_batches``) and the accumulator accumulate."""


class ImportPathError(TrainforgeError, ImportError):
    """A ``pkg.module:Name`` path whose module or attribute cannot be imported."""

    def __str__(self) -> str:  # ImportError would show only the first argument
        return self.user_message()


class UiServerError(TrainforgeError, OSError):
    """The UI server cannot listen on the address it was given."""


class UiRequestError(TrainforgeError, ValueError):
    """A query string the UI's JSON API cannot use (answered with HTTP status 400)."""


class AttentionPatchError(TrainforgeError, RuntimeError):
    """``model.sdpa=on`` and an attention layer cannot be switched to SDPA (or a bad mode)."""


class AlreadyFusedError(AttentionPatchError):
    """Raised by an attention patcher for a layer already running a fused kernel.

    ``FlashAttentionWrapper`` reports the layer as already fused; it never reaches a user.
    """


class ExportError(TrainforgeError, ValueError):
    """An export bundle cannot be built: unknown format, no format exports, bad input."""


class BundleExistsError(ExportError, FileExistsError):
    """The bundle's output folder exists and ``overwrite`` was not given."""


class MissingDependencyError(TrainforgeError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, package: str, *, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the package '{package}', which is not installed",
            hint=f"pip install 'trainforge[{extra}]'",
        )
