from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from runs.models import Run
from tests.runs.test_scenarios import make_workflow, wait
from workflows.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_fires_due_schedules_once_and_says_how_many(capsys):
    workflow = make_workflow("nightly", [wait(0, "tick")], queue="parked")
    schedule = Schedule.objects.create(workflow=workflow, cron="* * * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(
        next_fire_at=timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    )
    call_command("runscheduler", "--once")
    assert "Started 1 scheduled run(s)" in capsys.readouterr().out
    assert Run.objects.filter(schedule=schedule).count() == 1


@pytest.mark.parametrize("option", ["--tick=0", "--tick=-1", "--sweep=100000"])
def test_it_refuses_nonsense_intervals(option):
    with pytest.raises(CommandError, match="between 0 and 3600"):
        call_command("runscheduler", "--once", option)
