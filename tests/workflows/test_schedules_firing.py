"""Firing: the claim, catch-up and overlap policies, with real runs (left queued: the workflow's
queue has no worker and no in-process executor runs in these tests)."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from runs.services import cancel_run
from tests.runs.test_scenarios import make_workflow, wait
from workflows import schedules
from workflows.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workflow():
    return make_workflow("parked", [wait(0, "tick")], queue="parked")


# A whole minute in the future: fire times are computed from it, never from the wall clock.
T = (timezone.now() + timedelta(minutes=2)).replace(second=0, microsecond=0)
NOW = T + timedelta(seconds=2)


def due_schedule(workflow, *, since: timedelta = timedelta(0), **fields) -> Schedule:
    """A per-minute schedule whose next fire was due at T - since."""
    schedule = Schedule.objects.create(
        workflow=workflow, cron="* * * * *", timezone="UTC", **fields
    )
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=T - since)
    schedule.refresh_from_db()
    return schedule


def fire_again(schedule) -> int:
    """The next fire comes due (one minute later) and the scheduler ticks."""
    schedule.refresh_from_db()
    return schedules.fire_due_schedules(schedule.next_fire_at + timedelta(seconds=1))


def runs_of(schedule) -> list[Run]:
    return list(Run.objects.filter(schedule=schedule).order_by("id"))


def test_it_starts_a_run_with_the_schedule_input_and_moves_the_next_fire(workflow):
    schedule = due_schedule(workflow, input={"who": "cron"})
    assert schedules.fire_due_schedules(NOW) == 1
    (run,) = runs_of(schedule)
    assert (run.trigger, run.input, run.status) == ("schedule", {"who": "cron"}, "queued")
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T + timedelta(minutes=1)
    # Nothing is due any more.
    assert schedules.fire_due_schedules(NOW + timedelta(seconds=1)) == 0


def test_it_lets_only_one_claim_of_a_fire_win(workflow):
    schedule = due_schedule(workflow)
    stale_copy = Schedule.objects.get(pk=schedule.pk)
    assert schedules.fire_schedule(schedule, NOW) == 1
    # A second scheduler holding the same (now stale) row loses the claim.
    assert schedules.fire_schedule(stale_copy, NOW) == 0
    assert len(runs_of(schedule)) == 1


def test_it_skips_a_fire_while_the_previous_run_is_active(workflow):
    schedule = due_schedule(workflow, overlap=Schedule.Overlap.SKIP)
    schedules.fire_due_schedules(NOW)
    assert fire_again(schedule) == 0
    assert len(runs_of(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T + timedelta(minutes=2)


def test_it_queues_a_fire_behind_the_active_run(workflow):
    schedule = due_schedule(workflow, overlap=Schedule.Overlap.QUEUE)
    schedules.fire_due_schedules(NOW)
    fire_again(schedule)
    schedule.refresh_from_db()
    assert (len(runs_of(schedule)), schedule.pending_fires) == (1, 1)
    # When the previous run ends, the queued fire starts.
    cancel_run(runs_of(schedule)[0])
    assert schedules.release_queued_fires() == 1
    schedule.refresh_from_db()
    assert (len(runs_of(schedule)), schedule.pending_fires) == (2, 0)


def test_it_allows_overlapping_runs_when_asked(workflow):
    schedule = due_schedule(workflow, overlap=Schedule.Overlap.ALLOW)
    schedules.fire_due_schedules(NOW)
    fire_again(schedule)
    assert len(runs_of(schedule)) == 2


def test_it_runs_each_missed_fire_up_to_the_limit_after_downtime(workflow, settings):
    settings.SCHEDULE_MISFIRE_GRACE_SECONDS = 30
    schedule = due_schedule(
        workflow,
        since=timedelta(minutes=10),
        catch_up=Schedule.CatchUp.EACH,
        catch_up_limit=3,
        overlap=Schedule.Overlap.ALLOW,
    )
    # Ten missed fires: the newest three run, plus the one that is on time.
    assert schedules.fire_due_schedules(NOW) == 4
    fires = [
        datetime.fromisoformat(run.idempotency_key.split(":", 2)[2]) for run in runs_of(schedule)
    ]
    assert fires == [T - timedelta(minutes=n) for n in (3, 2, 1, 0)]


def test_it_does_not_fire_disabled_schedules_or_workflows(workflow):
    off = due_schedule(workflow)
    Schedule.objects.filter(pk=off.pk).update(enabled=False)
    assert schedules.fire_due_schedules(NOW) == 0
    Schedule.objects.filter(pk=off.pk).update(enabled=True)
    workflow.enabled = False
    workflow.save(update_fields=["enabled"])
    assert schedules.fire_due_schedules(NOW) == 0
    assert runs_of(off) == []


def test_it_keeps_firing_other_schedules_when_one_cannot_start_a_run(workflow):
    strict = make_workflow("strict", [wait(0, "tick")], queue="parked")
    strict_version = strict.current_version
    strict_version.definition["input_schema"] = {
        "type": "object",
        "required": ["needed"],
        "properties": {"needed": {"type": "integer"}},
    }
    strict_version.save(update_fields=["definition"])
    broken = due_schedule(strict, input={"needed": "not an integer"})
    fine = due_schedule(workflow)
    assert schedules.fire_due_schedules(NOW) == 1
    assert runs_of(broken) == [] and len(runs_of(fine)) == 1
    # The broken schedule's fire is spent, not retried at every tick.
    broken.refresh_from_db()
    assert broken.next_fire_at == T + timedelta(minutes=1)


def test_it_bounds_the_fires_queued_behind_a_run_that_does_not_end(workflow):
    schedule = due_schedule(workflow, overlap=Schedule.Overlap.QUEUE, catch_up_limit=2)
    schedules.fire_due_schedules(NOW)
    for _ in range(4):
        fire_again(schedule)
    schedule.refresh_from_db()
    assert (len(runs_of(schedule)), schedule.pending_fires) == (1, 2)
