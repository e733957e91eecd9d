"""Running one job attempt: its context (heartbeat, cancel, shutdown) and child processes.

Training runs in a child process so that a crash, an OOM kill or a hung CUDA call ends
only the job. On Linux the child is tied to the worker with ``PR_SET_PDEATHSIG``: if the
worker is killed (even with SIGKILL) its training process dies with it, the job's
heartbeat stops, and another worker takes the job over after the heartbeat timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trainforge.errors import JobFailedError

__all__ = ["JOB_ID_VARIABLE", "JobContext", "current_job_id", "run_child"]

#: Set for a job's child process: the tracked run records which job produced it.
JOB_ID_VARIABLE = "TRAINFORGE_JOB_ID"
_TERMINATE_GRACE_S = 30.0
# The child sets its parent-death signal, checks that its parent is still the worker
# (else the worker died before prctl), then becomes the real command.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(137)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def current_job_id() -> int | None:
    """The job this process works for (``TRAINFORGE_JOB_ID``, set by a worker), if any."""
    value = os.environ.get(JOB_ID_VARIABLE, "")
    return int(value) if value.isdigit() else None


class JobQueue(Protocol):
    """The part of :class:`~trainforge.jobs.JobManager` a running job uses."""

    def runs_of(self, job_id: int) -> list[dict[str, Any]]:
        """The runs a job produced, oldest first."""
        ...


@dataclass
class JobContext:
    """What a running job may ask its worker: is it still wanted, which attempt is this.

    Attributes:
        job_id: The job's id.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        worker_id: The worker running it.
        manager: The queue (user job types may submit follow-up jobs through it).
        lost: Set when the job was cancelled or taken over: stop and report nothing.
        stopping: Set when the worker shuts down: stop; the job is put back in the queue.
    """

    job_id: int
    attempt: int
    worker_id: str
    manager: JobQueue
    lost: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        """True when the job should stop now (cancelled, taken over, or worker stopping)."""
        return self.lost.is_set() or self.stopping.is_set()

    def last_run(self) -> dict[str, Any] | None:
        """The newest run this job produced in the queue's store, if any."""
        found = self.manager.runs_of(self.job_id)
        return found[-1] if found else None


def run_child(
    argv: Sequence[str],
    context: JobContext,
    log_file: Path,
    *,
    what: str,
    poll_s: float = 0.2,
    stdout_file: Path | None = None,
) -> None:
    """Run ``argv`` to completion for a job; output goes to ``log_file``.

    With ``stdout_file``, the child's standard output goes there instead (what it prints
    as its result) and only its standard error to ``log_file``.

    Raises:
        JobFailedError: It exited non-zero (the message quotes the error from its log),
            or it was stopped because the job was cancelled or the worker shuts down.
    """
    env = dict(os.environ)
    env[JOB_ID_VARIABLE] = str(context.job_id)
    command = list(argv)
    if sys.platform.startswith("linux"):
        command = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as files:
        log = files.enter_context(log_file.open("ab"))
        out = files.enter_context(stdout_file.open("wb")) if stdout_file is not None else log
        # a session of its own: Ctrl-C in the worker's terminal reaches the worker only,
        # which then stops the child cleanly (SIGTERM: the run is marked killed)
        child = subprocess.Popen(command, stdout=out, stderr=log, env=env, start_new_session=True)
        try:
            while True:
                try:
                    code = child.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    if context.should_stop():
                        _terminate(child)
                        reason = "cancelled" if context.lost.is_set() else "worker stopping"
                        raise JobFailedError(f"{what} stopped: {reason}") from None
        except BaseException:
            if child.poll() is None:
                _terminate(child)
            raise
    if code != 0:
        raise JobFailedError(
            f"{what} exited with code {code}: {_error_line(log_file)}",
            path=log_file,
            hint=f"the full output is in {log_file}",
        )


def _terminate(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=_TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _error_line(log_file: Path) -> str:
    """The error a failed child reported: its ``error:`` message, else its last line."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no output)"
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("error: "):
            return "\n".join(lines[index:])[:2000]
    tail = [line for line in lines if line.strip()]
    return tail[-1][:2000] if tail else "(no output)"
