"""Dependency order, concurrency, branch skipping, sub-workflows and version pinning."""

import time

import pytest

from runs import services
from runs.models import Run, StepRun
from tests.runs.conftest import make_workflow, py

pytestmark = pytest.mark.django_db(transaction=True)


def run_to_end(workflow, **input):
    run = services.start_run(workflow, input=input)
    services.execute_run(run.pk, executor_id="test-executor")
    run.refresh_from_db()
    return run


def branching_workflow(slug="branching"):
    return make_workflow(
        {
            "slug": slug,
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "steps": [
                py("measure", "echo", {"n": "{{ input.n }}"}),
                {
                    "id": "decide",
                    "type": "branch",
                    "depends_on": ["measure"],
                    "config": {
                        "cases": [{"when": "{{ steps.measure.output.n > 10 }}", "then": ["big"]}],
                        "default": ["small"],
                    },
                },
                py("big", "echo", {"size": "big"}, depends_on=["decide"]),
                py("small", "echo", {"size": "small"}, depends_on=["decide"]),
                py("after_small", "noop", depends_on=["small"]),
                py("join", "echo", {"big": "{{ steps.big.output }}"}, depends_on=["big", "small"]),
            ],
        }
    )


def test_it_skips_the_dependents_a_branch_did_not_choose_and_what_only_they_lead_to():
    run = run_to_end(branching_workflow(), n=50)

    assert run.status == Run.Status.SUCCEEDED, run.error
    status = dict(run.steps.values_list("step_id", "status"))
    assert status["big"] == StepRun.Status.SUCCEEDED
    assert status["small"] == StepRun.Status.SKIPPED
    assert status["after_small"] == StepRun.Status.SKIPPED  # only `small` led there
    assert status["join"] == StepRun.Status.SUCCEEDED  # `big` leads there too
    assert run.steps.get(step_id="join").output == {"big": {"size": "big"}}
    skipped = set(run.events.filter(type="step.skipped").values_list("payload__step", flat=True))
    assert skipped == {"small", "after_small"}


def test_it_takes_the_default_branch_when_no_case_holds():
    run = run_to_end(branching_workflow("branching-default"), n=3)

    status = dict(run.steps.values_list("step_id", "status"))
    assert status["big"] == StepRun.Status.SKIPPED
    assert status["small"] == status["after_small"] == StepRun.Status.SUCCEEDED
    assert status["join"] == StepRun.Status.SUCCEEDED
    assert run.steps.get(step_id="join").output == {"big": None}


def test_it_runs_independent_steps_concurrently_and_dependents_after_them():
    workflow = make_workflow(
        {
            "slug": "fan-out",
            "steps": [
                py("a", "sleepy", {"seconds": 0.5}),
                py("b", "sleepy", {"seconds": 0.5}),
                py("c", "sleepy", {"seconds": 0.5}),
                py("total", "noop", depends_on=["a", "b", "c"]),
            ],
        }
    )
    started = time.monotonic()
    run = run_to_end(workflow)

    assert run.status == Run.Status.SUCCEEDED
    assert time.monotonic() - started < 1.4  # not 1.5 s of sleeping one after another
    rows = {s.step_id: s for s in run.steps.all()}
    assert all(rows["total"].started_at >= rows[x].finished_at for x in "abc")


def test_it_keeps_to_the_step_concurrency_bound(settings):
    settings.STEP_CONCURRENCY = 2
    workflow = make_workflow(
        {
            "slug": "bounded",
            "steps": [py(f"s{i}", "sleepy", {"seconds": 0.3}) for i in range(4)],
        }
    )
    run = run_to_end(workflow)

    rows = list(run.steps.all())
    # At the moment each step started, how many were running (itself included)?
    for row in rows:
        running = [o for o in rows if o.started_at <= row.started_at < o.finished_at]
        assert len(running) <= 2
    assert run.status == Run.Status.SUCCEEDED


def test_it_runs_a_sub_workflow_and_takes_its_output():
    make_workflow(
        {
            "slug": "child",
            "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "steps": [py("double", "add", {"a": "{{ input.a }}", "b": "{{ input.a }}"})],
            "output": "{{ steps.double.output }}",
        }
    )
    parent = make_workflow(
        {
            "slug": "parent",
            "steps": [
                {
                    "id": "sub",
                    "type": "workflow",
                    "config": {"workflow": "child", "input": {"a": 21}},
                },
                py("use", "echo", {"got": "{{ steps.sub.output }}"}, depends_on=["sub"]),
            ],
        }
    )
    run = run_to_end(parent)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.steps.get(step_id="use").output == {"got": 42}
    child = Run.objects.get(parent_run=run)
    assert child.parent_step == "sub" and child.trigger == Run.Trigger.WORKFLOW
    assert child.status == Run.Status.SUCCEEDED and child.output == 42


def test_it_fails_the_parent_step_when_the_sub_workflow_fails():
    make_workflow({"slug": "bad-child", "steps": [py("boom", "fatal", {"message": "child broke"})]})
    parent = make_workflow(
        {
            "slug": "parent-of-bad",
            "steps": [{"id": "sub", "type": "workflow", "config": {"workflow": "bad-child"}}],
        }
    )
    run = run_to_end(parent)

    assert run.status == Run.Status.FAILED
    assert "child broke" in run.steps.get().error


def test_it_pins_a_run_to_the_version_it_started_with():
    workflow = make_workflow({"slug": "pinned", "steps": [py("v", "echo", {"version": 1})]})
    run = services.start_run(workflow)
    # An operator edits the workflow after the run was queued.
    make_workflow(
        {"slug": "pinned", "steps": [py("v", "echo", {"version": 2}), py("extra", "noop")]},
        workflow=workflow,
    )
    services.execute_run(run.pk, executor_id="test-executor")
    run.refresh_from_db()

    assert run.version.number == 1
    assert list(run.steps.values_list("step_id", flat=True)) == ["v"]
    assert run.output == {"v": {"version": 1}}
    # A new run uses the new version.
    assert run_to_end(workflow).output == {"v": {"version": 2}, "extra": {}}


def test_it_keeps_a_running_run_on_its_version_while_the_workflow_is_edited():
    workflow = make_workflow(
        {
            "slug": "edited-mid-run",
            "steps": [
                py("slow", "sleepy", {"seconds": 0.5}),
                py("then", "echo", {"version": 1}, depends_on=["slow"]),
            ],
        }
    )
    run = services.start_run(workflow)
    import threading

    worker = threading.Thread(
        target=services.execute_run, args=(run.pk,), kwargs={"executor_id": "test-executor"}
    )
    worker.start()
    time.sleep(0.2)
    make_workflow(
        {"slug": "edited-mid-run", "steps": [py("then", "echo", {"version": 2})]}, workflow=workflow
    )
    worker.join(10)
    run.refresh_from_db()

    assert run.status == Run.Status.SUCCEEDED
    assert run.steps.get(step_id="then").output == {"version": 1}


def test_it_resumes_a_failed_run_from_the_failed_step_keeping_completed_steps():
    from tests.runs import steps

    steps.reset_calls()
    workflow = make_workflow(
        {
            "slug": "resumable",
            "steps": [
                py("first", "flaky", {"key": "resume-first", "failures": 0}),
                py(
                    "second", "flaky", {"key": "resume-second", "failures": 1}, depends_on=["first"]
                ),
            ],
        }
    )
    failed = run_to_end(workflow)
    assert failed.status == Run.Status.FAILED

    resumed = services.resume_run(failed)
    services.execute_run(resumed.pk, executor_id="test-executor")
    resumed.refresh_from_db()

    assert resumed.status == Run.Status.SUCCEEDED
    assert resumed.origin_run == failed and resumed.trigger == Run.Trigger.RESUME
    assert steps.calls("resume-first") == 1  # kept, not executed again
    assert steps.calls("resume-second") == 2
