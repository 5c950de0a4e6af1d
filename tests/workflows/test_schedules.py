from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from workflows import schedules
from workflows.models import Schedule, Workflow


@pytest.fixture
def workflow(db):
    return Workflow.objects.create(slug="nightly", name="Nightly")


def make_schedule(workflow, **fields) -> Schedule:
    fields.setdefault("cron", "0 9 * * *")
    fields.setdefault("timezone", "UTC")
    return Schedule.objects.create(workflow=workflow, **fields)


@pytest.mark.parametrize(
    ("cron", "tz", "field"),
    [
        ("not a cron", "UTC", "cron"),
        ("61 * * * *", "UTC", "cron"),
        ("0 0 30 2 *", "UTC", "cron"),
        ("* * * *", "UTC", "cron"),
        ("* * * * * * *", "UTC", "cron"),
        ("", "UTC", "cron"),
        ("0 9 * * *", "Mars/Olympus", "timezone"),
        ("0 9 * * *", "../../etc/passwd", "timezone"),
        ("0 9 * * *", "", "timezone"),
    ],
)
def test_it_rejects_invalid_cron_and_time_zone_as_validation_errors(workflow, cron, tz, field):
    schedule = Schedule(workflow=workflow, cron=cron, timezone=tz)
    with pytest.raises(ValidationError) as caught:
        schedule.full_clean()
    # The error is on the field that is wrong, with a message, never an exception escaping.
    assert field in caught.value.message_dict


def test_it_accepts_five_fields_and_six_with_seconds(workflow):
    Schedule(workflow=workflow, cron="*/15 9-17 * * mon-fri", timezone="Europe/Paris").full_clean()
    Schedule(workflow=workflow, cron="*/5 * * * * *", timezone="UTC").full_clean()


def test_it_lists_the_next_five_fire_times_in_the_schedule_time_zone():
    after = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    times = schedules.fire_times("0 9 * * *", "Europe/Paris", after, 5)
    assert len(times) == 5
    # 09:00 local every day, across the spring DST change on 29 March.
    assert all(t.astimezone(ZoneInfo("Europe/Paris")).hour == 9 for t in times)
    assert [t.astimezone(UTC).hour for t in times] == [8, 7, 7, 7, 7]


def test_it_fires_once_through_the_autumn_dst_repeat():
    # 02:30 happens twice in Paris on 25 October 2026; a daily job must still fire once.
    after = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    times = schedules.fire_times("30 2 * * *", "Europe/Paris", after, 3)
    days = [t.astimezone(ZoneInfo("Europe/Paris")).day for t in times]
    assert days == [25, 26, 27]


def test_it_sets_the_next_fire_when_created_and_when_the_cron_changes(workflow):
    schedule = make_schedule(workflow, cron="0 9 * * *")
    first = schedule.next_fire_at
    assert first is not None and first > datetime.now(UTC)
    schedule.cron = "*/5 * * * * *"
    schedule.save()
    assert schedule.next_fire_at < first
    assert schedule.next_fire_at - datetime.now(UTC) <= timedelta(seconds=5)


def test_it_clears_the_next_fire_when_disabled(workflow):
    schedule = make_schedule(workflow)
    schedule.enabled = False
    schedule.save()
    schedule.refresh_from_db()
    assert schedule.next_fire_at is None


def _schedule_due_since(workflow, minutes: int, **fields) -> Schedule:
    schedule = make_schedule(workflow, cron="* * * * *", **fields)
    Schedule.objects.filter(pk=schedule.pk).update(
        next_fire_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC) - timedelta(minutes=minutes)
    )
    schedule.refresh_from_db()
    return schedule


NOW = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


def test_it_skips_missed_fires_but_runs_the_one_on_time(workflow, settings):
    settings.SCHEDULE_MISFIRE_GRACE_SECONDS = 30
    schedule = _schedule_due_since(workflow, 10, catch_up=Schedule.CatchUp.SKIP)
    assert schedules.fires_to_run(schedule, NOW) == [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]


def test_it_catches_up_once_for_all_missed_fires(workflow, settings):
    settings.SCHEDULE_MISFIRE_GRACE_SECONDS = 30
    schedule = _schedule_due_since(workflow, 10, catch_up=Schedule.CatchUp.ONCE)
    fires = schedules.fires_to_run(schedule, NOW)
    # The newest missed fire stands for all ten, plus the fire that is on time.
    assert fires == [
        datetime(2026, 1, 1, 11, 59, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    ]


def test_it_catches_up_each_missed_fire_up_to_the_limit(workflow, settings):
    settings.SCHEDULE_MISFIRE_GRACE_SECONDS = 30
    schedule = _schedule_due_since(workflow, 10, catch_up=Schedule.CatchUp.EACH, catch_up_limit=3)
    fires = schedules.fires_to_run(schedule, NOW)
    assert [f.minute for f in fires] == [57, 58, 59, 0]


def test_it_bounds_the_walk_through_a_long_downtime(workflow, settings):
    settings.SCHEDULE_MISFIRE_GRACE_SECONDS = 30
    schedule = make_schedule(workflow, cron="* * * * * *", catch_up=Schedule.CatchUp.EACH)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=NOW - timedelta(days=30))
    schedule.refresh_from_db()
    # A month of per-second fires: the walk stops, the limit (10) keeps the newest missed ones.
    fires = schedules.fires_to_run(schedule, NOW)
    missed = [f for f in fires if NOW - f > timedelta(seconds=30)]
    assert len(missed) == 10


CRON_ALPHABET = "0123456789*/,-LW#? abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\t\x00é"


@hypothesis_settings(max_examples=200, deadline=None, derandomize=True)
@given(
    cron=st.one_of(
        st.text(alphabet=CRON_ALPHABET, max_size=100),
        st.lists(
            st.text(alphabet="0123456789*/,-LW#?", min_size=1, max_size=8), min_size=4, max_size=7
        ).map(" ".join),
    ),
    tz=st.one_of(
        st.text(max_size=70), st.sampled_from(["UTC", "Europe/Paris", "../../etc/passwd"])
    ),
)
def test_it_answers_any_cron_and_time_zone_text_with_errors_never_an_exception(cron, tz):
    errors = schedules.validate(cron, tz)
    assert set(errors) <= {"cron", "timezone"}
    assert all(isinstance(message, str) and message for message in errors.values())
