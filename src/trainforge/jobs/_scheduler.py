"""TrainingScheduler: cron schedules that enqueue jobs, exactly once per slot.

A schedule is a row of ``schedules`` with a cron expression (read by croniter, in the
schedule's time zone). ``tick(now)`` enqueues a job for every due slot: the job carries
``(schedule_id, scheduled_for)``, which the database keeps unique, so several schedulers
ticking the same schedule enqueue one job per slot between them. Slots missed while no
scheduler ran are caught up by the schedule's policy: ``latest`` (one job, for the most
recent missed slot) or ``all`` (one job per missed slot, at most ``MAX_CATCHUP``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from trainforge.errors import ScheduleError, ScheduleNotFoundError, TrackingValueError
from trainforge.jobs._manager import JobManager
from trainforge.tracking._schema import schedules

__all__ = ["CATCHUP_POLICIES", "MAX_CATCHUP", "Schedule", "TrainingScheduler", "cron_slots"]

log = logging.getLogger(__name__)

CATCHUP_POLICIES = ("latest", "all")
#: Most missed slots one tick enqueues under ``catchup="all"`` (the newest are kept).
MAX_CATCHUP = 1000


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored."""

    id: int
    name: str
    job_type: str
    config: dict[str, Any]
    schedule_expr: str
    priority: int
    enabled: bool
    next_run_at: float | None
    last_run_at: float | None
    created_at: float
    timezone: str
    catchup: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: Any) -> Schedule:
        """Build from a ``schedules`` row."""
        data = dict(row._mapping)
        data["config"] = json.loads(data["config"]) if data["config"] else {}
        data["enabled"] = bool(data["enabled"])
        return cls(**data)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(
            f"unknown time zone {name!r}: {err}",
            hint="use an IANA name such as UTC, Europe/Berlin or America/New_York",
        ) from None


def check_cron(expr: str) -> None:
    """Raise ScheduleError unless ``expr`` is a cron expression croniter reads."""
    from croniter import croniter

    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise ScheduleError(
            f"invalid cron expression {expr!r}",
            hint="five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' "
            "(daily at 02:00) or '*/15 * * * *' (every 15 minutes)",
        )


def cron_slots(expr: str, timezone: str, after: float, until: float) -> list[float]:
    """Slot times (epoch seconds) of ``expr`` in ``(after, until]``, read in ``timezone``."""
    from croniter import croniter

    it = croniter(expr, datetime.fromtimestamp(after, _zone(timezone)))
    found: list[float] = []
    while True:
        slot = float(it.get_next(float))
        if slot > until:
            return found
        found.append(slot)
        if len(found) > MAX_CATCHUP:
            found.pop(0)


def next_slot(expr: str, timezone: str, after: float) -> float:
    """The first slot of ``expr`` strictly after ``after``."""
    from croniter import croniter

    return float(croniter(expr, datetime.fromtimestamp(after, _zone(timezone))).get_next(float))


class TrainingScheduler:
    """Create and run cron schedules that submit jobs to a :class:`JobManager`.

    Args:
        manager: The queue the jobs go to (or a store / URL to open one on).
        clock: Seconds since the epoch (tests inject simulated time).

    Examples:
        >>> t0 = 1_800_000_000.0  # simulated time: 2027-01-15 08:00 UTC
        >>> scheduler = TrainingScheduler("sqlite:///jobs.db", clock=lambda: t0)
        >>> schedule = scheduler.create_schedule(
        ...     "nightly", "train", {"overrides": ["trainer.max_epochs=3"]}, "0 2 * * *", priority=3
        ... )
        >>> scheduler.tick(now=t0 + 3600)  # no 02:00 slot has passed yet
        []
        >>> len(scheduler.tick(now=t0 + 24 * 3600))  # the next day: one train job submitted
        1
    """

    def __init__(self, manager: JobManager | Any = None, *, clock: Callable[[], float] = time.time):
        self.manager = manager if isinstance(manager, JobManager) else JobManager(manager)
        self.store = self.manager.store
        self.clock = clock

    def __repr__(self) -> str:
        return f"TrainingScheduler({self.store.display_url!r})"

    def create_schedule(
        self,
        name: str,
        job_type: str,
        config: Mapping[str, Any] | None,
        schedule_expr: str,
        priority: int = 0,
        timezone: str = "UTC",
        *,
        catchup: str = "latest",
        enabled: bool = True,
    ) -> int:
        """Validate and store a schedule; returns its id. Its first slot is after now.

        Raises:
            ScheduleError: Invalid cron expression, unknown time zone or catch-up policy,
                or a schedule with this name exists.
            RegistryError: Unknown job type (with the closest name).
            ConfigError: The job type refused the config.
        """
        check_cron(schedule_expr)
        _zone(timezone)
        if catchup not in CATCHUP_POLICIES:
            raise ScheduleError(
                f"unknown catch-up policy {catchup!r}",
                hint="'latest' enqueues only the newest missed slot, 'all' every missed slot",
            )
        if not name or len(name) > 200:
            raise ScheduleError(f"a schedule name must have 1 to 200 characters, got {name!r}")
        job_name = self.manager.job_types.canonical(job_type)
        data = self.manager.job_types.get(job_name).validate(
            dict(config or {}), store_url=self.store.url
        )
        now = self.clock()
        row = {
            "name": name,
            "job_type": job_name,
            "config": json.dumps(data, sort_keys=True),
            "schedule_expr": schedule_expr,
            "priority": int(priority),
            "enabled": 1 if enabled else 0,
            "next_run_at": next_slot(schedule_expr, timezone, now),
            "last_run_at": None,
            "created_at": now,
            "timezone": timezone,
            "catchup": catchup,
        }

        def write(conn: Connection) -> int | None:
            if conn.execute(select(schedules.c.id).where(schedules.c.name == name)).first():
                return None
            inserted = conn.execute(insert(schedules).values(row)).inserted_primary_key
            return int(inserted[0])  # type: ignore[index]

        try:
            schedule_id = self.store.write(write)
        except TrackingValueError:  # a concurrent create of the same name
            schedule_id = None
        if schedule_id is None:
            raise ScheduleError(
                f"a schedule named {name!r} exists already",
                hint=f"trainforge schedules delete {name} first, or choose another name",
            )
        return schedule_id

    def get_schedule(self, name_or_id: str | int) -> Schedule:
        """The schedule with this name (or id).

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        column = schedules.c.id if isinstance(name_or_id, int) else schedules.c.name
        query = select(schedules).where(column == name_or_id)
        row = self.store.read(lambda c: c.execute(query).first())
        if row is None:
            raise ScheduleNotFoundError(
                f"no schedule {name_or_id!r} in {self.store.display_url}",
                hint="trainforge schedules list shows the schedules",
            )
        return Schedule.from_row(row)

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        query = select(schedules).order_by(schedules.c.name)
        return [Schedule.from_row(r) for r in self.store.read(lambda c: c.execute(query).all())]

    def enable(self, name_or_id: str | int) -> Schedule:
        """Enable a schedule; its next slot is the first one after now (no backlog)."""
        schedule = self.get_schedule(name_or_id)
        upcoming = next_slot(schedule.schedule_expr, schedule.timezone, self.clock())
        self._set(schedule.id, enabled=1, next_run_at=upcoming)
        return self.get_schedule(schedule.id)

    def disable(self, name_or_id: str | int) -> Schedule:
        """Disable a schedule: ticks skip it until it is enabled again."""
        schedule = self.get_schedule(name_or_id)
        self._set(schedule.id, enabled=0)
        return self.get_schedule(schedule.id)

    def delete(self, name_or_id: str | int) -> None:
        """Delete a schedule (the jobs it submitted stay)."""
        schedule = self.get_schedule(name_or_id)
        self.store.write(
            lambda c: c.execute(delete(schedules).where(schedules.c.id == schedule.id))
        )

    def tick(self, now: float | None = None) -> list[int]:
        """Enqueue every due slot of every enabled schedule; returns the new jobs' ids.

        Safe with several schedulers: a slot another scheduler enqueued is skipped.
        """
        now = self.clock() if now is None else now
        submitted: list[int] = []
        for schedule in self.list_schedules():
            if not schedule.enabled or schedule.next_run_at is None:
                continue
            if schedule.next_run_at > now:
                continue
            slots = [schedule.next_run_at]
            slots += cron_slots(schedule.schedule_expr, schedule.timezone, slots[0], now)
            if schedule.catchup == "latest":
                slots = slots[-1:]
            elif len(slots) > MAX_CATCHUP:
                log.warning(
                    "schedule %s missed %d slots; enqueuing the newest %d",
                    schedule.name,
                    len(slots),
                    MAX_CATCHUP,
                )
                slots = slots[-MAX_CATCHUP:]
            for slot in slots:
                job_id = self.manager.submit_once(
                    schedule.job_type,
                    schedule.config,
                    schedule.priority,
                    schedule_id=schedule.id,
                    scheduled_for=slot,
                    validated=True,
                )
                if job_id is not None:
                    submitted.append(job_id)
            upcoming = next_slot(schedule.schedule_expr, schedule.timezone, now)
            # only forward: a scheduler with an older clock never moves a schedule back
            advance = (
                update(schedules)
                .where(schedules.c.id == schedule.id, schedules.c.next_run_at < upcoming)
                .values(next_run_at=upcoming, last_run_at=slots[-1])
            )
            self._execute(advance)
        return submitted

    def _set(self, schedule_id: int, **values: Any) -> None:
        self._execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))

    def _execute(self, statement: Any) -> None:
        self.store.write(lambda c: c.execute(statement))
