"""Cancellation (queued, between steps, inside a script) and exactly-once finalisation."""

import contextlib
import os
import threading
import time

import pytest
from django.db import connections

from runs import services
from runs.engine.claims import claim_run, finalize_run
from runs.exceptions import RunNotCancellable
from runs.models import Run, StepRun
from tests.runs.conftest import chain, execute_in_thread, make_workflow, pid_sleeper, py

pytestmark = pytest.mark.django_db(transaction=True)

FINAL_EVENTS = ["run.succeeded", "run.failed", "run.cancelled", "run.timed_out"]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_it_cancels_a_queued_run_which_then_never_executes(alice):
    run = services.start_run(make_workflow(chain("queued", 2)))
    services.cancel_run(run, by=alice)
    services.execute_run(run.pk, executor_id="test-executor")
    run.refresh_from_db()

    assert run.status == Run.Status.CANCELLED and run.error == "cancelled by alice"
    assert not run.steps.exclude(status=StepRun.Status.PENDING).filter(started_at__isnull=False)
    assert run.events.filter(type="run.cancelled").count() == 1
    assert not run.events.filter(type="run.started").exists()


def test_it_refuses_to_cancel_a_final_run():
    run = services.start_run(make_workflow(chain("done", 1)))
    services.execute_run(run.pk, executor_id="test-executor")
    with pytest.raises(RunNotCancellable):
        services.cancel_run(run)


def test_it_stops_between_steps_when_cancelled():
    workflow = make_workflow(
        {
            "slug": "between",
            "steps": [
                py("first", "sleepy", {"seconds": 0.6}),
                py("second", "noop", depends_on=["first"]),
            ],
        }
    )
    run = services.start_run(workflow)
    worker = execute_in_thread(run)
    assert wait_for(lambda: run.steps.filter(step_id="first", status="running").exists())
    cancelled_at = time.monotonic()
    services.cancel_run(run)
    worker.join(5)
    run.refresh_from_db()

    assert run.status == Run.Status.CANCELLED
    assert time.monotonic() - cancelled_at < 1.0  # the executor let go within a second
    second = run.steps.get(step_id="second")
    assert second.status == StepRun.Status.CANCELLED and second.started_at is None
    assert run.events.filter(type__in=FINAL_EVENTS).count() == 1


def test_it_kills_the_process_of_a_running_script_step_when_cancelled(tmp_path):
    pidfile = tmp_path / "pid"
    workflow = make_workflow({"slug": "cancel-script", "steps": [pid_sleeper("sleeper", pidfile)]})
    run = services.start_run(workflow)
    worker = execute_in_thread(run)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    cancelled_at = time.monotonic()
    services.cancel_run(run)
    worker.join(5)

    assert not worker.is_alive()
    assert time.monotonic() - cancelled_at < 1.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    assert run.steps.get().status == StepRun.Status.CANCELLED


def test_it_cancels_the_child_run_with_its_parent():
    make_workflow(
        {"slug": "slow-child", "steps": [{"id": "w", "type": "wait", "config": {"seconds": 30}}]}
    )
    parent = make_workflow(
        {
            "slug": "slow-parent",
            "steps": [{"id": "sub", "type": "workflow", "config": {"workflow": "slow-child"}}],
        }
    )
    run = services.start_run(parent)
    worker = execute_in_thread(run)
    assert wait_for(lambda: Run.objects.filter(parent_run=run, status="running").exists())
    services.cancel_run(run)
    worker.join(5)

    child = Run.objects.get(parent_run=run)
    assert not worker.is_alive()
    assert child.status == Run.Status.CANCELLED
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def race_cancel_against_finish(run: Run) -> dict[str, bool]:
    """Release a cancel and the executor's own finish together; report who won."""
    barrier = threading.Barrier(2)
    results: dict[str, bool] = {}

    def finish() -> None:
        barrier.wait()
        try:
            results["finish"] = finalize_run(
                run.pk, Run.Status.SUCCEEDED, output={"ok": True}, limited=False
            )
        finally:
            connections.close_all()

    def cancel() -> None:
        barrier.wait()
        try:
            services.cancel_run(Run.objects.get(pk=run.pk))
            results["cancel"] = True
        except RunNotCancellable:
            results["cancel"] = False
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finish), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


@pytest.mark.parametrize("iteration", range(3))
def test_it_finalises_once_when_a_cancel_and_the_normal_end_race(iteration):
    workflow = make_workflow(chain(f"race-{iteration}", 1))
    for _ in range(15):
        run = services.start_run(workflow)
        assert claim_run(run.pk, "racer") is not None
        results = race_cancel_against_finish(run)

        run.refresh_from_db()
        assert results["finish"] != results["cancel"]  # exactly one won
        expected = Run.Status.SUCCEEDED if results["finish"] else Run.Status.CANCELLED
        assert run.status == expected
        finals = list(run.events.filter(type__in=FINAL_EVENTS).values_list("type", flat=True))
        assert finals == [f"run.{expected}"]
        seqs = list(run.events.values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))


def test_it_finalises_once_when_a_cancel_races_a_real_execution():
    workflow = make_workflow(chain("race-real", 2))
    outcomes = set()
    for i in range(20):
        run = services.start_run(workflow)
        worker = execute_in_thread(run)
        time.sleep(0.002 * (i % 5))  # land the cancel at different points of the run
        with contextlib.suppress(RunNotCancellable):
            services.cancel_run(Run.objects.get(pk=run.pk))
        worker.join(10)
        run.refresh_from_db()
        outcomes.add(run.status)
        assert run.status in (Run.Status.SUCCEEDED, Run.Status.CANCELLED)
        assert run.events.filter(type__in=FINAL_EVENTS).count() == 1
        seqs = list(run.events.values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
    assert Run.Status.CANCELLED in outcomes
