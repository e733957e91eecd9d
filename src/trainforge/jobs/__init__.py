"""Jobs: a queue of training work in the tracking store, workers, schedules.

:class:`JobManager` submits, claims (atomically, on SQLite and PostgreSQL), retries and
cancels jobs; :class:`Worker` runs them (training in a child process, resuming from the
job's last checkpoint after a crash); :class:`TrainingScheduler` enqueues jobs from cron
schedules, once per slot however many schedulers run. Job types are registered by name
(:func:`register_job_type`). Layer 2: imports config and tracking, never torch at import,
so the ``jobs`` commands start fast.
"""

from trainforge.jobs._child import JOB_ID_VARIABLE, JobContext, current_job_id
from trainforge.jobs._job import JOB_STATUSES, Job
from trainforge.jobs._manager import JobManager
from trainforge.jobs._scheduler import CATCHUP_POLICIES, Schedule, TrainingScheduler
from trainforge.jobs._types import JOB_TYPES, JobType, register_job_type
from trainforge.jobs._worker import Worker

__all__ = [
    "CATCHUP_POLICIES",
    "JOB_ID_VARIABLE",
    "JOB_STATUSES",
    "JOB_TYPES",
    "Job",
    "JobContext",
    "JobManager",
    "JobType",
    "Schedule",
    "TrainingScheduler",
    "Worker",
    "current_job_id",
    "register_job_type",
]
