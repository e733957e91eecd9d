"""A job as stored in the queue, and the statuses it moves through."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from trainforge.errors import TrackingValueError, did_you_mean

__all__ = ["FINISHED", "JOB_STATUSES", "Job", "check_status"]

JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    """One job as stored: what to do, its state, and what it produced."""

    id: int
    job_type: str
    config: dict[str, Any]
    priority: int
    status: str
    worker_id: str | None
    attempts: int
    max_attempts: int
    not_before: float | None
    heartbeat_at: float | None
    schedule_id: int | None
    scheduled_for: float | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    dedupe_key: str | None = None

    @property
    def job_id(self) -> int:
        """The job's id (the seed's name for it)."""
        return self.id

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """Build from a ``jobs`` row."""
        data = dict(row._mapping)
        data["config"] = json.loads(data["config"]) if data["config"] else {}
        data["result"] = json.loads(data["result"]) if data.get("result") else None
        data["reasons"] = json.loads(data["reasons"]) if data.get("reasons") else []
        return cls(**data)


def check_status(status: str) -> None:
    """Refuse a status no job can have (with the closest one)."""
    if status not in JOB_STATUSES:
        guess = did_you_mean(status, JOB_STATUSES)
        raise TrackingValueError(
            f"unknown job status {status!r}" + (f"; did you mean {guess!r}?" if guess else ""),
            hint=f"valid statuses: {', '.join(JOB_STATUSES)}",
        )
