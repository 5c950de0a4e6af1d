import pytest

from runs import services
from runs.models import Run, StepRun
from tests.runs.conftest import chain, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_executes_a_chain_in_order_and_records_every_step():
    workflow = make_workflow(chain("chain3", 3, "echo"))
    run = services.start_run(workflow, input={})
    services.execute_run(run.pk, executor_id="test")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    steps = list(run.steps.order_by("started_at"))
    assert [s.step_id for s in steps] == ["s0", "s1", "s2"]
    assert all(s.status == StepRun.Status.SUCCEEDED and s.attempt == 1 for s in steps)
    types = list(run.events.values_list("type", flat=True))
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert run.output == {"s2": {}}
