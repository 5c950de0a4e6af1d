"""Retries with backoff, step and run timeouts, the step budget, output limits (issue 3, point 3)."""

import os
import time

import pytest

from runs import services
from runs.exceptions import InvalidInput
from runs.models import Run, StepRun
from tests.runs import steps
from tests.runs.conftest import chain, make_workflow, pid_sleeper, py

pytestmark = pytest.mark.django_db(transaction=True)


def run_to_end(workflow, **input):
    run = services.start_run(workflow, input=input)
    services.execute_run(run.pk, executor_id="test-executor")
    run.refresh_from_db()
    return run


def retries(**policy):
    return {"retries": {"jitter": False, **policy}}


def test_it_retries_with_exponential_backoff_until_the_step_succeeds():
    steps.reset_calls()
    flaky = py(
        "flaky",
        "flaky",
        {"key": "backoff", "failures": 2},
        policies=retries(max_attempts=3, backoff="exponential", delay_seconds=0.2),
    )
    run = run_to_end(make_workflow({"slug": "backoff", "steps": [flaky]}))

    assert run.status == Run.Status.SUCCEEDED, run.error
    step = run.steps.get()
    assert step.attempt == 3 and step.output == {"calls": 3}
    delays = [e.payload["delay_seconds"] for e in run.events.filter(type="step.retrying")]
    assert delays == [0.2, 0.4]  # doubling from delay_seconds
    times = steps.call_times("backoff")
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4


def test_it_waits_a_fixed_delay_with_jitter_in_the_upper_half():
    steps.reset_calls()
    flaky = py(
        "flaky",
        "flaky",
        {"key": "fixed", "failures": 2},
        policies={
            "retries": {"max_attempts": 3, "backoff": "fixed", "delay_seconds": 0.2, "jitter": True}
        },
    )
    run = run_to_end(make_workflow({"slug": "fixed", "steps": [flaky]}))

    assert run.status == Run.Status.SUCCEEDED
    delays = [e.payload["delay_seconds"] for e in run.events.filter(type="step.retrying")]
    assert len(delays) == 2 and all(0.1 <= d <= 0.2 for d in delays)


def test_it_fails_the_run_when_attempts_run_out():
    steps.reset_calls()
    flaky = py(
        "flaky",
        "flaky",
        {"key": "out", "failures": 5},
        policies=retries(max_attempts=2, delay_seconds=0.01),
    )
    after = py("after", "noop", depends_on=["flaky"])
    run = run_to_end(make_workflow({"slug": "attempts", "steps": [flaky, after]}))

    assert run.status == Run.Status.FAILED
    assert "flaky" in run.error and "attempt 2 failed" in run.error
    assert run.steps.get(step_id="flaky").attempt == 2
    # The dependent never ran.
    assert run.steps.get(step_id="after").started_at is None
    assert run.events.filter(type="run.failed").count() == 1


def test_it_does_not_retry_an_error_marked_not_retryable():
    step = py("fatal", "fatal", {"message": "bad data"}, policies=retries(max_attempts=5))
    run = run_to_end(make_workflow({"slug": "fatal", "steps": [step]}))

    assert run.status == Run.Status.FAILED
    assert run.steps.get().attempt == 1
    assert "bad data" in run.error


def test_it_retries_only_the_error_kinds_listed_in_retry_on():
    step = py(
        "slow",
        "sleepy",
        {"seconds": 1.0},
        policies={
            "timeout_seconds": 0.2,
            **retries(max_attempts=3, delay_seconds=0.01, retry_on=["error"]),
        },
    )
    run = run_to_end(make_workflow({"slug": "retry-on", "steps": [step]}))

    assert run.status == Run.Status.FAILED
    assert run.steps.get().attempt == 1  # a timeout is not in retry_on
    assert "timed out" in run.error


def test_it_stops_waiting_for_a_python_step_at_its_timeout():
    step = py("slow", "sleepy", {"seconds": 5}, policies={"timeout_seconds": 0.3})
    started = time.monotonic()
    run = run_to_end(make_workflow({"slug": "py-timeout", "steps": [step]}))

    assert run.status == Run.Status.FAILED
    assert time.monotonic() - started < 2.5
    failed = run.events.get(type="step.failed")
    assert failed.payload["kind"] == "timeout"
    assert "timed out after 0.3 s" in run.steps.get().error


def test_it_kills_a_script_step_process_at_its_timeout(tmp_path):
    pidfile = tmp_path / "pid"
    script = pid_sleeper("sleeper", pidfile, policies={"timeout_seconds": 1})
    started = time.monotonic()
    run = run_to_end(make_workflow({"slug": "script-timeout", "steps": [script]}))

    assert run.status == Run.Status.FAILED
    assert time.monotonic() - started < 5
    pid = int(pidfile.read_text())
    # The process is really gone, not left sleeping.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "timed out" in run.steps.get().error


def test_it_times_out_a_run_at_its_deadline():
    wait = {"id": "wait", "type": "wait", "config": {"seconds": 10}}
    workflow = make_workflow(
        {"slug": "run-timeout", "steps": [wait], "policies": {"timeout_seconds": 1}}
    )
    started = time.monotonic()
    run = run_to_end(workflow)

    assert run.status == Run.Status.TIMED_OUT
    assert time.monotonic() - started < 3
    assert run.events.filter(type="run.timed_out").count() == 1
    assert run.steps.get().status == StepRun.Status.CANCELLED


def test_it_fails_a_run_that_exhausts_its_step_budget():
    run = run_to_end(make_workflow(chain("budget", 4, max_step_executions=2)))

    assert run.status == Run.Status.FAILED
    assert "step budget" in run.error
    assert run.step_executions == 2
    assert not run.steps.filter(step_id__in=["s2", "s3"], started_at__isnull=False).exists()


def test_it_counts_retries_against_the_step_budget():
    steps.reset_calls()
    flaky = py(
        "flaky",
        "flaky",
        {"key": "budget-retries", "failures": 10},
        policies=retries(max_attempts=10, delay_seconds=0.01),
    )
    workflow = make_workflow(
        {"slug": "budget-retries", "steps": [flaky], "policies": {"max_step_executions": 3}}
    )
    run = run_to_end(workflow)

    assert run.status == Run.Status.FAILED
    assert run.step_executions == 3 and run.steps.get().attempt == 3


def test_it_fails_a_step_whose_output_is_too_big(settings):
    settings.STEP_OUTPUT_MAX_BYTES = 1000
    run = run_to_end(make_workflow({"slug": "big", "steps": [py("big", "big", {"size": 5000})]}))

    assert run.status == Run.Status.FAILED
    assert "over the limit of 1000 bytes" in run.steps.get().error


def test_it_fails_a_step_whose_output_is_not_json():
    run = run_to_end(make_workflow({"slug": "notjson", "steps": [py("bad", "not_json")]}))

    assert run.status == Run.Status.FAILED
    assert "not JSON" in run.steps.get().error


def test_it_refuses_input_that_does_not_match_the_schema_and_creates_nothing():
    workflow = make_workflow(
        {
            "slug": "typed",
            "input_schema": {
                "type": "object",
                "properties": {"count": {"type": "integer"}},
                "additionalProperties": False,
            },
            "steps": [py("a", "noop")],
        }
    )
    for bad in ({"count": "three"}, {"other": 1}, [1, 2], "text"):
        with pytest.raises(InvalidInput):
            services.start_run(workflow, input=bad)
    assert not Run.objects.exists()


def test_it_fills_input_defaults_and_renders_expressions_from_input_and_steps():
    workflow = make_workflow(
        {
            "slug": "exprs",
            "input_schema": {
                "type": "object",
                "properties": {"a": {"type": "integer", "default": 2}},
            },
            "steps": [
                py("first", "add", {"a": "{{ input.a }}", "b": 3}),
                py(
                    "second",
                    "add",
                    {"a": "{{ steps.first.output }}", "b": 10},
                    depends_on=["first"],
                ),
            ],
            "output": "{{ steps.second.output }}",
        }
    )
    run = run_to_end(workflow)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.input == {"a": 2} and run.output == 15
    assert run.steps.get(step_id="second").input["args"] == {"a": 5, "b": 10}


def test_it_masks_secrets_a_step_reveals_in_output_logs_and_events():
    run = run_to_end(
        make_workflow(
            {
                "slug": "masking",
                "steps": [py("leak", "leak", {"secret": "hunter2-very-secret"})],
            }
        )
    )

    assert run.status == Run.Status.SUCCEEDED
    step = run.steps.get()
    assert "hunter2" not in str(step.output) and "hunter2" not in step.logs
    assert "***" in step.logs
    assert not any("hunter2" in str(e.payload) for e in run.events.all())
    assert "hunter2" not in str(run.output)
