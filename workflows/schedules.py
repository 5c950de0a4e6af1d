"""Schedules: cron in a time zone, fired exactly once per fire time by any number of schedulers.

A fire is claimed in the database by a conditional update of `Schedule.next_fire_at` (only the
scheduler that still sees the old value wins), and the run it starts is created in the same
transaction, with an idempotency key naming the fire, so a fire can never produce two runs.

Cron expressions have five fields (minute hour day month weekday) or six, with seconds first
(`*/5 * * * * *`), as cronsim reads them. Times are computed in the schedule's IANA time zone,
so a daily 09:00 stays at 09:00 local time across DST changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from workflows.models import Schedule

logger = logging.getLogger("workflows")

# Bound the walk back through missed fires (a per-second cron after a week of downtime).
MAX_MISSED_SCAN = 10_000


class ScheduleError(ValueError):
    """An invalid cron expression or time zone; `.field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_timezone(name: str) -> ZoneInfo:
    if not name or not isinstance(name, str) or len(name) > 64:
        raise ScheduleError("timezone", "Enter an IANA time zone name, e.g. Europe/Paris.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            "timezone", f"{name!r} is not a known IANA time zone (e.g. Europe/Paris)."
        ) from None


def _cron(expr: str, start: datetime, *, reverse: bool = False) -> CronSim:
    if not isinstance(expr, str) or len(expr.split()) not in (5, 6):
        raise ScheduleError(
            "cron",
            "Enter five fields (minute hour day month weekday), or six with seconds first.",
        )
    try:
        return CronSim(expr, start, reverse=reverse)
    except (CronSimError, ValueError, KeyError, IndexError) as exc:
        raise ScheduleError("cron", f"Invalid cron expression: {exc}") from None


def validate(cron: str, tz_name: str) -> dict[str, str]:
    """Field name to message for everything wrong; empty when the schedule can fire."""
    errors: dict[str, str] = {}
    tz = None
    try:
        tz = parse_timezone(tz_name)
    except ScheduleError as exc:
        errors[exc.field] = str(exc)
    try:
        fires = _cron(cron, timezone.now().astimezone(tz or ZoneInfo("UTC")))
        next(fires)
    except ScheduleError as exc:
        errors[exc.field] = str(exc)
    except (StopIteration, CronSimError):
        errors["cron"] = "This cron expression never fires."
    return errors


def fire_times(cron: str, tz_name: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, in the schedule's time zone."""
    tz = parse_timezone(tz_name)
    fires = _cron(cron, after.astimezone(tz))
    result: list[datetime] = []
    for fire in fires:
        if fire > after:
            result.append(fire)
        if len(result) >= count:
            break
    return result


def next_fire_after(schedule: Schedule, after: datetime) -> datetime | None:
    try:
        times = fire_times(schedule.cron, schedule.timezone, after, 1)
    except (ScheduleError, StopIteration, CronSimError):
        return None
    return times[0].astimezone(UTC) if times else None


def next_fire_times(schedule: Schedule, count: int = 5) -> list[datetime]:
    """What the admin shows: the next fire times from now, in the schedule's time zone."""
    try:
        return fire_times(schedule.cron, schedule.timezone, timezone.now(), count)
    except (ScheduleError, StopIteration, CronSimError):
        return []


def _missed_and_due(schedule: Schedule, now: datetime) -> tuple[list[datetime], list[datetime]]:
    """Split the fire times in [next_fire_at, now] into missed (too old) and due (on time)."""
    grace = timedelta(seconds=settings.SCHEDULE_MISFIRE_GRACE_SECONDS)
    tz = parse_timezone(schedule.timezone)
    # Walk back from now: the newest fires are the ones "each" keeps under its limit.
    newest_first: list[datetime] = []
    for fire in _walk_back(schedule.cron, now.astimezone(tz)):
        if fire < schedule.next_fire_at or len(newest_first) >= MAX_MISSED_SCAN:
            break
        newest_first.append(fire.astimezone(UTC))
    fires = newest_first[::-1]
    # A fire older than the grace when a scheduler reaches it was missed (nothing was running)
    # and follows the catch-up policy; younger ones are merely late and run as usual.
    missed = [t for t in fires if now - t > grace]
    due = [t for t in fires if now - t <= grace]
    return missed, due


def _walk_back(cron: str, start: datetime) -> Iterator[datetime]:
    # cronsim in reverse yields fires strictly before a whole second, but at or before one with
    # microseconds: a microsecond makes a fire at exactly `start` count too.
    yield from _cron(cron, start.replace(microsecond=max(start.microsecond, 1)), reverse=True)


def fires_to_run(schedule: Schedule, now: datetime) -> list[datetime]:
    """The fire times that should start a run now, after the catch-up policy."""
    missed, due = _missed_and_due(schedule, now)
    if missed:
        logger.info("Schedule %s missed %d fire(s)", schedule.pk, len(missed))
    if schedule.catch_up == Schedule.CatchUp.ONCE and missed:
        missed = missed[-1:]
    elif schedule.catch_up == Schedule.CatchUp.EACH:
        missed = missed[-schedule.catch_up_limit :] if schedule.catch_up_limit else []
    else:
        missed = []
    return missed + due


def fire_due_schedules(now: datetime | None = None) -> int:
    """Fire every enabled schedule whose time has come; return how many runs were started.

    Safe with any number of schedulers at once: each fire is claimed in the database first.
    """
    now = now or timezone.now()
    started = 0
    due = Schedule.objects.filter(
        enabled=True, workflow__enabled=True, next_fire_at__lte=now
    ).select_related("workflow")
    for schedule in due:
        try:
            started += fire_schedule(schedule, now)
        except Exception:
            # One broken schedule must not stop the others from firing.
            logger.exception("Schedule %s could not fire", schedule.pk)
    started += release_queued_fires()
    initialise_next_fires(now)
    return started


def fire_schedule(schedule: Schedule, now: datetime) -> int:
    """Claim the schedule's due fires and start their runs in one transaction."""
    claimed_at = schedule.next_fire_at
    fires = fires_to_run(schedule, now)
    following = next_fire_after(schedule, now)
    started = 0
    with transaction.atomic():
        won = Schedule.objects.filter(pk=schedule.pk, next_fire_at=claimed_at).update(
            next_fire_at=following, last_fired_at=now
        )
        if not won:
            return 0  # another scheduler claimed these fires
        for fire in fires:
            started += _fire_once(schedule, fire)
    # Tests count these lines across scheduler processes: one per claimed fire time.
    for fire in fires:
        logger.info("Schedule %s fired for %s", schedule.pk, fire.isoformat())
    return started


def _fire_once(schedule: Schedule, fire: datetime) -> int:
    if schedule.overlap != Schedule.Overlap.ALLOW and has_active_run(schedule):
        if schedule.overlap == Schedule.Overlap.QUEUE:
            # The queue is bounded like catch-up: a run that never ends must not pile up fires.
            queued = Schedule.objects.filter(
                pk=schedule.pk, pending_fires__lt=max(schedule.catch_up_limit, 1)
            ).update(pending_fires=F("pending_fires") + 1)
            outcome = "queued behind the active run" if queued else "dropped, the queue is full"
            logger.info("Schedule %s: fire %s %s", schedule.pk, fire, outcome)
        else:
            logger.info("Schedule %s: fire %s skipped, previous run active", schedule.pk, fire)
        return 0
    return _start_scheduled_run(schedule, f"schedule:{schedule.pk}:{fire.isoformat()}")


def has_active_run(schedule: Schedule) -> bool:
    from runs.models import Run

    return Run.objects.filter(schedule=schedule, status__in=Run.ACTIVE_STATUSES).exists()


def release_queued_fires() -> int:
    """Start one queued fire of each "queue" schedule whose previous run has finished."""
    started = 0
    waiting = Schedule.objects.filter(enabled=True, pending_fires__gt=0).select_related("workflow")
    for schedule in waiting:
        if has_active_run(schedule):
            continue
        with transaction.atomic():
            won = Schedule.objects.filter(
                pk=schedule.pk, pending_fires=schedule.pending_fires
            ).update(pending_fires=F("pending_fires") - 1)
            if won:
                key = f"schedule:{schedule.pk}:queued:{timezone.now().isoformat()}"
                started += _start_scheduled_run(schedule, key)
    return started


def _start_scheduled_run(schedule: Schedule, idempotency_key: str) -> int:
    from runs.models import Run
    from runs.services import start_run

    try:
        # A savepoint: a run that cannot start (invalid input, disabled workflow) is logged
        # and the fire stays claimed, instead of being retried forever.
        with transaction.atomic():
            start_run(
                schedule.workflow,
                input=schedule.input or {},
                trigger=Run.Trigger.SCHEDULE,
                schedule=schedule,
                idempotency_key=idempotency_key,
            )
    except Exception as exc:
        logger.warning("Schedule %s could not start a run: %s", schedule.pk, exc)
        return 0
    return 1


def initialise_next_fires(now: datetime | None = None) -> int:
    """Give enabled schedules without a next fire time their first one (after `now`)."""
    now = now or timezone.now()
    count = 0
    for schedule in Schedule.objects.filter(enabled=True, next_fire_at__isnull=True):
        following = next_fire_after(schedule, now)
        if following is not None:
            count += Schedule.objects.filter(pk=schedule.pk, next_fire_at__isnull=True).update(
                next_fire_at=following
            )
    return count


def reschedule(schedule: Schedule, now: datetime | None = None) -> None:
    """Set `next_fire_at` from now (on create, on a cron or time zone change, on enabling)."""
    schedule.next_fire_at = (
        next_fire_after(schedule, now or timezone.now()) if schedule.enabled else None
    )
