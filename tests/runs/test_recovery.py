"""Crash recovery: a SIGKILLed executor's run is continued by the next one (issue 3, point 2)."""

import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from runs import services
from runs.engine.claims import claim_run
from runs.models import Run, StepRun
from tests.runs.conftest import make_workflow, py
from tests.tier2_processes import ChildProcess, child_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def executor_process(log_dir, name):
    env = child_env(
        HEARTBEAT_SECONDS="0.2",
        ORPHAN_AFTER_SECONDS="1",
        DJANGO_SETTINGS_MODULE="appstrate.settings",
    )
    return ChildProcess(
        [sys.executable, "-m", "tests.runs.executor_process"], env, log_dir / f"{name}.log"
    )


def step_status(run, step_id):
    return run.steps.filter(step_id=step_id).values_list("status", flat=True).first()


def test_it_continues_a_run_after_its_executor_is_killed_and_never_repeats_a_step(tmp_path):
    ledger = tmp_path / "ledger.txt"
    workflow = make_workflow(
        {
            "slug": "five-steps",
            "steps": [
                py(
                    f"s{i}",
                    "ledger",
                    {"path": str(ledger), "name": f"s{i}", "sleep": 0.5},
                    depends_on=[f"s{i - 1}"] if i else [],
                )
                for i in range(5)
            ],
        }
    )
    run = services.start_run(workflow)  # stays queued: no executor runs in this process
    first = executor_process(tmp_path, "first").start()
    try:
        # Kill mid-way: two steps done and persisted, the third one executing.
        wait_for(
            lambda: step_status(run, "s1") == "succeeded" and step_status(run, "s2") == "running",
            60,
            message="step s2 to be running",
        )
        first.kill()
    finally:
        first.stop()
    assert ledger.read_text().split() == ["s0", "s1"]
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING  # nobody finished it: the executor just vanished

    second = executor_process(tmp_path, "second").start()
    try:
        wait_for(lambda: Run.objects.get(pk=run.pk).is_final, 60, message="the run to finish")
    finally:
        second.stop()

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    # Each completed step executed exactly once; the interrupted one ran again from scratch.
    assert ledger.read_text().split() == ["s0", "s1", "s2", "s3", "s4"]
    attempts = dict(run.steps.values_list("step_id", "attempt"))
    assert attempts == {"s0": 1, "s1": 1, "s2": 2, "s3": 1, "s4": 1}
    started = run.events.filter(type="run.started").order_by("seq")
    assert started.count() == 2 and "resumed_from" in started.last().payload
    assert run.events.filter(type="step.retrying", payload__reason="interrupted").count() == 1


def orphan(run, step_status, *, node_type="python"):
    """Make `run` look like its executor died while `s0` was in flight."""
    claim_run(run.pk, "dead-executor")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    # The claim created the run's pending step rows; s0 was in flight.
    StepRun.objects.update_or_create(
        run=run,
        step_id="s0",
        defaults={
            "node_type": node_type,
            "status": step_status,
            "attempt": 1,
            "started_at": timezone.now(),
        },
    )


def test_it_fails_a_run_interrupted_during_a_non_idempotent_step():
    workflow = make_workflow(
        {
            "slug": "non-idempotent",
            "steps": [
                {"id": "s0", "type": "script", "config": {"language": "shell", "source": "echo hi"}}
            ],
        }
    )
    run = services.start_run(workflow)
    orphan(run, StepRun.Status.RUNNING, node_type="script")
    services.execute_run(run.pk, executor_id="live-executor")
    run.refresh_from_db()

    assert run.status == Run.Status.FAILED
    assert run.error == "interrupted during non-idempotent step 's0'"
    assert run.steps.get().attempt == 1  # not executed again


def test_it_retries_an_interrupted_step_marked_idempotent_by_policy():
    workflow = make_workflow(
        {
            "slug": "declared-idempotent",
            "steps": [
                {
                    "id": "s0",
                    "type": "script",
                    "config": {"language": "shell", "source": "echo '{\"ok\": 1}'"},
                    "policies": {"idempotent": True},
                }
            ],
        }
    )
    run = services.start_run(workflow)
    orphan(run, StepRun.Status.RUNNING, node_type="script")
    services.execute_run(run.pk, executor_id="live-executor")
    run.refresh_from_db()

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.steps.get().attempt == 2


# Tier 1 only: it counts the sessions on the test database, and at tier 2 Celery workers that
# tests start meanwhile open theirs.
@pytest.mark.tier0
@pytest.mark.postgresql
def test_it_gives_the_heartbeat_connection_back_as_soon_as_the_last_run_ends(settings):
    settings.HEARTBEAT_SECONDS = 0.05
    steps = [
        py("beating", "sleepy", {"seconds": 0.5}),  # the heartbeat thread opens its session
        py("slow", "slow_heartbeats", {"seconds": 60}, depends_on=["beating"]),
        # One more beat while the run is active, then the thread waits a minute.
        py("after", "sleepy", {"seconds": 0.3}, depends_on=["slow"]),
    ]
    workflow = make_workflow({"slug": "idle-heartbeat", "steps": steps})
    run = services.start_run(workflow)
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (started,) = cursor.fetchone()
    try:
        services.execute_run(run.pk, executor_id="test-heartbeat")
        assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED

        # Its next beat is a minute away, but an idle process holds no session of its own:
        # the heartbeat thread closes the connection it opened during the run when the run
        # ends. (Sessions opened before this test are someone else's.)
        def opened_meanwhile() -> int:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_start >= %s",
                    [started],
                )
                return cursor.fetchone()[0]

        wait_for(
            lambda: opened_meanwhile() == 0, 10, message="the heartbeat thread to close its session"
        )
    finally:
        # Later tests need beats again: the end of another run wakes the thread, which then
        # reads the usual interval instead of sleeping out its minute.
        settings.HEARTBEAT_SECONDS = 0.05
        quick = services.start_run(make_workflow({"slug": "wake", "steps": [py("s", "noop")]}))
        services.execute_run(quick.pk, executor_id="test-heartbeat")


def test_it_leaves_a_run_alone_while_its_executor_heartbeats(settings):
    workflow = make_workflow({"slug": "alive", "steps": [py("s0", "noop")]})
    run = services.start_run(workflow)
    claim_run(run.pk, "busy-executor")

    # A fresh heartbeat: another executor must not take the run.
    assert claim_run(run.pk, "other-executor") is None
    services.execute_run(run.pk, executor_id="other-executor")
    run.refresh_from_db()
    assert run.owner == "busy-executor" and run.status == Run.Status.RUNNING

    # Silent for longer than ORPHAN_AFTER_SECONDS: now it may.
    Run.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.ORPHAN_AFTER_SECONDS + 1)
    )
    services.execute_run(run.pk, executor_id="other-executor")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.owner == "other-executor"


def test_it_does_not_let_a_replaced_executor_write_to_the_run():
    from runs.engine.execution import RunExecution

    workflow = make_workflow({"slug": "replaced", "steps": [py("s0", "noop")]})
    run = services.start_run(workflow)
    claimed, _ = claim_run(run.pk, "old-executor")
    # Another executor took the run over meanwhile.
    Run.objects.filter(pk=run.pk).update(owner="new-executor")
    outcome = RunExecution(claimed, "old-executor").execute()

    assert outcome.status == "lost"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING  # untouched: the new owner finishes it
    assert not run.events.filter(type__startswith="step.").exists()
