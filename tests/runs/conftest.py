import threading

import pytest
from django.db import connections

import tests.runs.steps  # noqa: F401  (registers the test functions)
from runs.models import Run
from workflows.definition import compile_definition, content_hash
from workflows.models import Workflow, WorkflowVersion

UNCONSUMED_QUEUE = "engine-tests-unconsumed"


def make_workflow(raw: dict, *, workflow: Workflow | None = None) -> Workflow:
    """Store `raw` (compiled) as the workflow's new current version, as an operator's edit would.

    These tests execute runs themselves (in threads or processes they start), so at tier 2 the
    runs go to a queue no Celery worker consumes: a worker another test started must not race
    them for the claim. A test that wants a worker names its queue explicitly.
    """
    raw = {**raw, "policies": {"queue": UNCONSUMED_QUEUE, **(raw.get("policies") or {})}}
    canonical = compile_definition(raw)
    if workflow is None:
        workflow = Workflow.objects.create(slug=canonical["slug"], name=canonical["name"])
    number = workflow.versions.count() + 1
    version = WorkflowVersion.objects.create(
        workflow=workflow,
        number=number,
        content_hash=content_hash(canonical),
        definition=canonical,
    )
    workflow.current_version = version
    workflow.definition = raw
    workflow.save(update_fields=["current_version", "definition"])
    return workflow


def py(step_id: str, function: str, args: dict | None = None, depends_on=(), **extra) -> dict:
    config = {"function": f"enginetest.{function}"}
    if args is not None:
        config["args"] = args
    return {
        "id": step_id,
        "type": "python",
        "config": config,
        "depends_on": list(depends_on),
        **extra,
    }


def pid_sleeper(step_id: str, pidfile, **extra) -> dict:
    """A shell `script` step that writes its process id to `pidfile`, then sleeps 30 s."""
    return {
        "id": step_id,
        "type": "script",
        "config": {
            "language": "shell",
            "source": 'echo $$ > "$PIDFILE"; exec sleep 30',
            "env": {"PIDFILE": str(pidfile)},
        },
        **extra,
    }


def chain(slug: str, count: int, function: str = "noop", **policies) -> dict:
    steps = [py(f"s{i}", function, depends_on=[f"s{i - 1}"] if i else []) for i in range(count)]
    return {"slug": slug, "steps": steps, "policies": policies}


@pytest.fixture
def workflow_factory(db):
    return make_workflow


@pytest.fixture
def final(db):
    def refresh(run: Run) -> Run:
        run.refresh_from_db()
        return run

    return refresh


def execute_in_thread(run: Run, executor_id: str = "test-executor") -> threading.Thread:
    """Execute the run on another thread, as an executor thread would (closing its connection)."""
    from runs import services

    def execute() -> None:
        try:
            services.execute_run(run.pk, executor_id=executor_id)
        finally:
            connections.close_all()

    worker = threading.Thread(target=execute)
    worker.start()
    return worker
