import pytest

from runs.models import Run
from runs.services import execute_run, start_run
from workflows.models import Workflow

# The executor runs steps in threads of its own: they must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def run_to_end(slug, input):
    run = start_run(Workflow.objects.get(slug=slug), input=input, submit=False)
    execute_run(run.pk, executor_id="test-demo")
    run.refresh_from_db()
    return run


def statuses(run):
    return {step.step_id: step.status for step in run.steps.all()}


@pytest.mark.parametrize(
    ("threshold", "chosen", "skipped"), [(1, "big", "small"), (100_000, "small", "big")]
)
def test_it_runs_the_demo_pipeline_end_to_end(threshold, chosen, skipped):
    run = run_to_end("demo-pipeline", {"count": 4, "seed": 7, "threshold": threshold})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.output["label"] == chosen
    assert run.output["count"] == 4
    assert run.output["waited_seconds"] == 1
    assert run.output["sum_of_squares"] > run.output["sum"]
    steps = statuses(run)
    assert steps[skipped] == "skipped"
    assert {s for s, status in steps.items() if status == "succeeded"} == {
        "generate",
        "transform",
        "check",
        chosen,
        "pause",
        "summarise",
    }


def test_it_shows_retries_in_the_flaky_demo():
    run = run_to_end("demo-flaky", {})
    assert run.status == Run.Status.SUCCEEDED, run.error
    step = run.steps.get(step_id="unreliable")
    assert (step.attempt, step.output) == (3, {"succeeded_on_attempt": 3})


def test_it_fails_the_flaky_demo_for_good_when_asked():
    run = run_to_end("demo-flaky", {"fail": True})
    assert run.status == Run.Status.FAILED
    assert "asked to fail (attempt 4)" in run.error


def test_it_runs_the_long_demo_for_the_seconds_asked():
    run = run_to_end("demo-long", {"seconds": 1})
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.steps.get(step_id="sleep").output == {"slept_seconds": 1}
