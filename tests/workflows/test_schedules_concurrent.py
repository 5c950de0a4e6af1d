"""Two scheduler processes against one database: every fire produces exactly one run."""

import itertools
import re
import sys

import pytest

from runs.models import Run
from tests.runs.test_scenarios import make_workflow, wait
from tests.tier2_processes import ChildProcess, child_env, wait_for
from workflows.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)

FIRED = re.compile(r"Schedule (\d+) fired for (\S+)")


def test_it_fires_each_second_exactly_once_with_two_schedulers(tmp_path):
    workflow = make_workflow("every-second", [wait(0, "tick")])
    # Six fields: cronsim reads the first as seconds. "allow" so a queued run never holds
    # back the next fire (at tier 0 nothing executes them here).
    schedule = Schedule.objects.create(
        workflow=workflow, cron="* * * * * *", timezone="UTC", overlap=Schedule.Overlap.ALLOW
    )
    argv = [sys.executable, "manage.py", "runscheduler", "--tick", "0.05"]
    schedulers = [
        ChildProcess(argv, child_env(), tmp_path / f"scheduler-{i}.log").start() for i in (1, 2)
    ]
    try:
        # Until both have claimed fires and eight seconds have fired (boot is slow under load).
        wait_for(
            lambda: (
                all(FIRED.search(s.output()) for s in schedulers)
                and sum(len(FIRED.findall(s.output())) for s in schedulers) >= 8
            ),
            90,
            message="both schedulers to fire",
        )
    finally:
        for scheduler in schedulers:
            scheduler.stop()
    claims = [FIRED.findall(s.output()) for s in schedulers]
    fired = sorted(fire for found in claims for pk, fire in found if int(pk) == schedule.pk)
    keys = sorted(Run.objects.filter(schedule=schedule).values_list("idempotency_key", flat=True))
    # Each fire was claimed by one scheduler only, and produced one run.
    assert len(fired) >= 8
    assert len(set(fired)) == len(fired)
    assert keys == sorted(f"schedule:{schedule.pk}:{fire}" for fire in fired)
    # No second was skipped between the first and the last fire.
    seconds = [int(fire[17:19]) for fire in fired]
    assert all((b - a) % 60 == 1 for a, b in itertools.pairwise(seconds))
    # Both processes really raced for the fires.
    assert all(found for found in claims), [s.output()[-1500:] for s in schedulers]
