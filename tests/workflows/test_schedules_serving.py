"""Who fires schedules: the serving process at tiers 0 and 1, never at tier 2+."""

import sys
import time

import pytest

from infra.registry import get_mode
from runs.models import Run
from tests.runs.test_scenarios import make_workflow, wait
from tests.tier2_processes import ChildProcess, child_env, unused_port, wait_for
from workflows.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_fires_schedules_in_the_serving_process_only_at_tiers_0_and_1(tmp_path):
    workflow = make_workflow("served", [wait(0, "tick")])
    schedule = Schedule.objects.create(workflow=workflow, cron="* * * * * *", timezone="UTC")
    argv = [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(unused_port()),
        "appstrate.asgi:application",
    ]  # fmt: skip
    server = ChildProcess(argv, child_env(), tmp_path / "daphne.log").start()
    try:
        wait_for(lambda: "Appstrate tier" in server.output(), 30, message="daphne to start")
        if get_mode().executor == "inline":
            # The serving process fires the schedule and its in-process executor runs it.
            wait_for(lambda: Run.objects.filter(schedule=schedule, status="succeeded").exists(), 20)
        else:
            # At tier 2 the web process leaves schedules to `manage.py runscheduler`.
            time.sleep(3)
            assert not Run.objects.filter(schedule=schedule).exists()
    finally:
        server.stop()
