"""Nothing is lost between the database and the broker (tier 2, real processes)."""

import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from runs.services import start_run
from tests.runs.test_scenarios import make_workflow, wait, wait_final
from tests.tier2_processes import (
    CeleryWorker,
    ChildProcess,
    RedisServer,
    celery_broker,
    child_env,
    wait_for,
)

pytestmark = [pytest.mark.tier2, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_redis(tmp_path):
    with RedisServer(tmp_path).start() as server:
        yield server


@pytest.fixture
def deployment(private_redis, tmp_path):
    """A worker and a scheduler process whose broker is the private Redis."""
    env = child_env(REDIS_URL=private_redis.url, SWEEP_SECONDS="0.5", DISPATCH_GRACE_SECONDS="1")
    worker = CeleryWorker(tmp_path, env=env).start()
    argv = [sys.executable, "manage.py", "runscheduler", "--tick", "0.2"]
    scheduler = ChildProcess(argv, env, tmp_path / "scheduler.log").start()
    try:
        with celery_broker(private_redis.url):
            yield worker, scheduler
    finally:
        scheduler.stop()
        worker.stop()


def test_it_completes_a_run_started_while_the_broker_was_down(private_redis, deployment):
    worker, scheduler = deployment
    workflow = make_workflow("outage", [wait(0, "a"), wait(0, "b", "a")])
    private_redis.stop()
    # Starting a run with the broker down neither fails nor hangs: the run waits, queued.
    run = start_run(workflow, input={})
    run.refresh_from_db()
    assert (run.status, run.dispatched_at) == (Run.Status.QUEUED, None)
    private_redis.start()
    # Nobody touches it: the scheduler's sweep dispatches it, the worker reconnects and runs it.
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final, 90, message="the run to finish")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, worker.output()[-2000:])
    assert "Dispatched 1 stranded" in scheduler.output()


@pytest.fixture
def sweeping_worker(tmp_path):
    """A worker that sweeps every half second, and no scheduler process anywhere."""
    env = child_env(WORKER_SWEEP_SECONDS="0.5", DISPATCH_GRACE_SECONDS="0.5")
    worker = CeleryWorker(tmp_path, env=env).start()
    try:
        yield worker
    finally:
        worker.stop()


def test_a_worker_dispatches_a_stranded_run_without_a_scheduler(sweeping_worker):
    workflow = make_workflow("worker-sweep", [wait(0, "a"), wait(0, "b", "a")])
    run = start_run(workflow, input={}, submit=False)  # never handed to the broker
    assert Run.objects.get(pk=run.pk).dispatched_at is None
    run = wait_final(run, 30)
    assert run.status == Run.Status.SUCCEEDED, (run.error, sweeping_worker.output()[-2000:])
    assert "Dispatched 1 stranded" in sweeping_worker.output()


def test_a_worker_continues_an_orphaned_run_without_a_scheduler(sweeping_worker):
    from runs.engine.claims import claim_run

    workflow = make_workflow("worker-orphan", [wait(0, "a"), wait(0, "b", "a")])
    run = start_run(workflow, input={}, submit=False)
    # An executor claims the run and dies before its first step: it never heartbeats again.
    assert claim_run(run.pk, "dead-host:1:gone") is not None
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    run = wait_final(run, 30)
    assert run.status == Run.Status.SUCCEEDED, (run.error, sweeping_worker.output()[-2000:])
    assert run.owner.startswith("celery@")
    assert "lost its executor dead-host:1:gone" in sweeping_worker.output()


def test_it_logs_the_startup_line_once_per_worker_start(celery_worker_process):
    lines = [
        line for line in celery_worker_process.output().splitlines() if "Appstrate tier 2:" in line
    ]
    assert len(lines) == 1, lines
    assert "executor=celery" in lines[0] and "pubsub=redis" in lines[0]


def test_it_syncs_code_workflows_when_a_worker_starts(tmp_path):
    from workflows.models import Workflow, WorkflowVersion

    code = set(Workflow.objects.filter(source="code").values_list("slug", flat=True))
    assert code  # the demo app's flows.py, synced after migrate
    Workflow.objects.filter(source="code").update(current_version=None)
    WorkflowVersion.objects.filter(workflow__source="code").delete()
    Workflow.objects.filter(source="code").delete()
    worker = CeleryWorker(tmp_path).start()
    try:
        # A worker deployed with flows.py code registers those definitions as it starts.
        wait_for(
            lambda: (
                set(Workflow.objects.filter(source="code").values_list("slug", flat=True)) == code
            ),
            30,
            message="the worker to sync code workflows",
        )
    finally:
        worker.stop()
