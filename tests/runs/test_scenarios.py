"""One scenario suite for every tier: whatever executor the tier gives runs the same scenarios.

Tier 0 (bin/test's first pass): the in-process executor, threads in this process, on SQLite.
Tier 2 (second pass): a real `celery -A appstrate worker` process on PostgreSQL and Redis,
cancels over Redis pub-sub, and a real `manage.py runscheduler` sweeping orphans.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from infra.registry import get_executor, get_mode
from runs.models import Run, RunEvent, StepRun
from runs.services import cancel_run, start_run
from tests.infra.processes import pid_is_gone
from tests.tier2_processes import ChildProcess, child_env, wait_for
from workflows.definition import compile_definition, content_hash
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db(transaction=True)


class InProcessTier:
    """Tier 0/1: the executor is threads in this process (the serving process, in production)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.doomed: ChildProcess | None = None

    def ready(self) -> None:
        get_executor().start()

    def crash_while_executing(self, run: Run, until) -> None:
        # This process cannot SIGKILL itself, so another process executes the run (as a
        # serving process would) and dies mid-way; this one plays the restarted server.
        get_executor().stop()
        code = (
            "import django; django.setup(); from runs.services import execute_run; "
            f"execute_run({run.pk})"
        )
        self.doomed = ChildProcess(
            [sys.executable, "-c", code],
            child_env(DJANGO_SETTINGS_MODULE="appstrate.settings"),
            self.log_dir / "doomed.log",
        ).start()
        wait_for(until, 30, message="the doomed executor to reach the step")
        self.doomed.kill()

    def recover(self) -> None:
        self.ready()  # a starting executor picks up runs whose owner stopped heartbeating

    def close(self) -> None:
        get_executor().stop()
        if self.doomed is not None:
            self.doomed.stop()


class CeleryTier:
    """Tier 2: a real worker process; a real scheduler process sweeps orphans after a crash."""

    def __init__(self, worker, log_dir: Path) -> None:
        self.worker = worker
        self.log_dir = log_dir
        self.scheduler: ChildProcess | None = None

    def ready(self) -> None:
        if not self.worker.alive:
            self.worker.start()

    def crash_while_executing(self, run: Run, until) -> None:
        self.ready()
        wait_for(until, 30, message="the worker to reach the step")
        self.worker.kill()

    def recover(self) -> None:
        self.worker.start()
        argv = [sys.executable, "manage.py", "runscheduler", "--tick", "0.2", "--sweep", "0.5"]
        self.scheduler = ChildProcess(argv, child_env(), self.log_dir / "scheduler.log").start()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        self.ready()  # leave a live worker for the next test


@pytest.fixture
def tier(request, settings, tmp_path):
    # Fast heartbeats in this process too: its sweeps and claims judge orphans by them.
    settings.HEARTBEAT_SECONDS = 0.5
    settings.ORPHAN_AFTER_SECONDS = 3
    if get_mode().executor == "celery":
        current = CeleryTier(request.getfixturevalue("celery_worker_process"), tmp_path)
    else:
        current = InProcessTier(tmp_path)
    try:
        yield current
    finally:
        current.close()


def make_workflow(slug: str, steps: list[dict], **policies) -> Workflow:
    definition = compile_definition({"slug": slug, "policies": policies, "steps": steps})
    workflow = Workflow.objects.create(slug=slug, name=slug, definition=definition)
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, content_hash=content_hash(definition), definition=definition
    )
    workflow.current_version = version
    workflow.save(update_fields=["current_version"])
    return workflow


def wait(seconds: float, step_id: str, *after: str, **policies) -> dict:
    step = {
        "id": step_id,
        "type": "wait",
        "config": {"seconds": seconds},
        "depends_on": list(after),
    }
    return {**step, "policies": policies} if policies else step


def shell(step_id: str, source: str, *after: str, **policies) -> dict:
    config = {"language": "shell", "source": source}
    step = {"id": step_id, "type": "script", "config": config, "depends_on": list(after)}
    return {**step, "policies": policies} if policies else step


def wait_final(run: Run, timeout: float = 30) -> Run:
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_final, timeout, message=f"run {run.pk} to finish"
    )
    run.refresh_from_db()
    return run


def step(run: Run, step_id: str) -> StepRun:
    return StepRun.objects.get(run=run, step_id=step_id)


def event_types(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))


def assert_events_numbered_without_gaps(run: Run) -> None:
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_it_starts_and_succeeds(tier):
    tier.ready()
    workflow = make_workflow("chain", [wait(0, "a"), wait(0, "b", "a"), wait(0, "c", "b")])
    run = wait_final(start_run(workflow, input={}))
    assert run.status == Run.Status.SUCCEEDED
    assert [step(run, s).status for s in "abc"] == ["succeeded"] * 3
    types = event_types(run)
    assert types[:2] == ["run.queued", "run.started"] and types[-1] == "run.succeeded"
    assert_events_numbered_without_gaps(run)
    # The tier's executor ran it: this process at tier 0, a worker process at tier 2.
    owner_pid = int(run.owner.split(":")[1])
    in_process = get_mode().executor == "inline"
    assert (owner_pid == os.getpid()) is in_process


def test_it_retries_a_failing_step_until_it_succeeds(tier, tmp_path):
    tier.ready()
    counter = tmp_path / "attempts"
    source = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        '[ "$n" -ge 3 ] || { echo "attempt $n fails" >&2; exit 1; }; echo "{\\"attempt\\": $n}"'
    )
    retries = {"max_attempts": 3, "backoff": "fixed", "delay_seconds": 0.1, "jitter": False}
    workflow = make_workflow("flaky", [shell("flaky", source, retries=retries)])
    run = wait_final(start_run(workflow, input={}))
    assert run.status == Run.Status.SUCCEEDED
    flaky = step(run, "flaky")
    assert (flaky.attempt, flaky.output) == (3, {"attempt": 3})
    assert event_types(run).count("step.retrying") == 2


def test_it_fails_the_run_when_retries_are_exhausted(tier):
    tier.ready()
    retries = {"max_attempts": 2, "backoff": "fixed", "delay_seconds": 0.1, "jitter": False}
    workflow = make_workflow(
        "broken",
        [shell("broken", "echo nope >&2; exit 3", retries=retries), wait(0, "after", "broken")],
    )
    run = wait_final(start_run(workflow, input={}))
    assert run.status == Run.Status.FAILED
    assert "broken" in run.error
    assert (step(run, "broken").status, step(run, "broken").attempt) == ("failed", 2)
    # The dependent step never ran.
    assert step(run, "after").status != StepRun.Status.SUCCEEDED
    assert "step.started" not in [
        e.type for e in RunEvent.objects.filter(run=run, payload__step="after")
    ]


def test_it_cancels_a_queued_run_before_it_starts(tier):
    tier.ready()
    # Concurrency 1: the second run waits in the queue behind the first.
    workflow = make_workflow("single", [wait(30, "long")], concurrency=1)
    first = start_run(workflow, input={})
    wait_for(lambda: Run.objects.get(pk=first.pk).status == Run.Status.RUNNING, 20)
    second = start_run(workflow, input={})
    time.sleep(0.5)
    assert Run.objects.get(pk=second.pk).status == Run.Status.QUEUED
    cancel_run(second)
    cancel_run(first)
    second.refresh_from_db()
    assert second.status == Run.Status.CANCELLED
    assert "run.started" not in event_types(second)
    assert wait_final(first).status == Run.Status.CANCELLED


def test_it_cancels_a_running_run_and_kills_its_script_within_a_second(tier, tmp_path):
    tier.ready()
    pidfile = tmp_path / "script.pid"
    workflow = make_workflow(
        "sleeper",
        [shell("sleep", f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; sleep 60")],
    )
    run = start_run(workflow, input={})
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30))
    assert not pid_is_gone(pid)
    cancel_run(run)
    # The script's process dies within a second of the cancel, wherever it runs.
    wait_for(lambda: pid_is_gone(pid), 1.0, message="the script process to be killed")
    run = wait_final(run, 5)
    assert run.status == Run.Status.CANCELLED
    wait_for(
        lambda: (
            step(run, "sleep").status == StepRun.Status.CANCELLED
            or step(run, "sleep").status == StepRun.Status.FAILED
        ),
        5,
    )
    assert event_types(run).count("run.cancelled") == 1


def test_it_times_out_a_run_past_its_deadline(tier):
    tier.ready()
    workflow = make_workflow("slow", [wait(30, "nap")], timeout_seconds=1)
    started = time.monotonic()
    run = wait_final(start_run(workflow, input={}), 15)
    assert run.status == Run.Status.TIMED_OUT
    assert time.monotonic() - started < 10
    assert step(run, "nap").status == StepRun.Status.CANCELLED


def test_it_resumes_a_run_after_its_executor_is_killed(tier, tmp_path):
    ledger = tmp_path / "ledger"
    append = lambda name: f"echo {name} >> {ledger}; echo '{{}}'"  # noqa: E731
    steps = [
        shell("first", append("first")),
        wait(4, "middle", "first"),  # idempotent: retried after the crash
        shell("last", append("last"), "middle"),
    ]
    workflow = make_workflow("crashy", steps)
    run = start_run(workflow, input={})
    tier.crash_while_executing(
        run,
        until=lambda: StepRun.objects.filter(
            run=run, step_id="middle", status=StepRun.Status.RUNNING
        ).exists(),
    )
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING  # nobody finished it
    tier.recover()
    run = wait_final(run, 45)
    assert run.status == Run.Status.SUCCEEDED, run.error
    # Each completed step ran once: the first step was not repeated after the crash.
    assert ledger.read_text().split() == ["first", "last"]
    assert step(run, "first").attempt == 1
    started = RunEvent.objects.filter(run=run, type="run.started").order_by("seq")
    assert started.count() == 2 and "resumed_from" in started.last().payload
    assert_events_numbered_without_gaps(run)
