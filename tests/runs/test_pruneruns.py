"""manage.py pruneruns: retention by age and count, per-workflow overrides, dry run."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from runs.models import Run, RunEvent, StepRun
from tests.runs.conftest import chain
from workflows.definition import DefinitionError, compile_definition


@pytest.fixture(autouse=True)
def _retention_settings(settings):
    settings.RUNS_RETENTION_DAYS = 30
    settings.RUNS_RETENTION_COUNT = 100


def _run(workflow, *, days_old, status=Run.Status.SUCCEEDED, parent=None, events=2):
    run = Run.objects.create(
        workflow=workflow, version=workflow.current_version, status=status, parent_run=parent
    )
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    StepRun.objects.create(run=run, step_id="s0", node_type="python")
    for seq in range(1, events + 1):
        RunEvent.objects.create(run=run, seq=seq, type="run.queued")
    return run


def _ids(workflow):
    return set(Run.objects.filter(workflow=workflow).values_list("pk", flat=True))


def test_it_prunes_runs_older_than_the_retention_days(workflow_factory):
    workflow = workflow_factory(chain("ages", 1))
    old, recent = _run(workflow, days_old=45), _run(workflow, days_old=3)
    summary = call_command("pruneruns")
    assert summary == "Pruned 1 runs (1 steps, 2 events) in 1 workflows."
    assert _ids(workflow) == {recent.pk}
    # Its steps and events went with it.
    assert not RunEvent.objects.filter(run_id=old.pk).exists()
    assert not StepRun.objects.filter(run_id=old.pk).exists()


def test_it_keeps_only_the_newest_runs_beyond_the_count(workflow_factory, settings):
    settings.RUNS_RETENTION_COUNT = 2
    workflow = workflow_factory(chain("counts", 1))
    runs = [_run(workflow, days_old=days) for days in (5, 4, 3, 2, 1)]
    call_command("pruneruns")
    assert _ids(workflow) == {runs[-1].pk, runs[-2].pk}


def test_it_follows_the_workflows_retention_policy(workflow_factory):
    keep_all = workflow_factory(chain("keep-all", 1, retention={"days": None, "count": None}))
    strict = workflow_factory(chain("strict", 1, retention={"count": 1}))
    default = workflow_factory(chain("default", 1))
    ancient = _run(keep_all, days_old=400)
    strict_runs = [_run(strict, days_old=d) for d in (3, 2, 1)]
    default_old = _run(default, days_old=400)
    call_command("pruneruns")
    assert _ids(keep_all) == {ancient.pk}
    assert _ids(strict) == {strict_runs[-1].pk}
    assert not Run.objects.filter(pk=default_old.pk).exists()


def test_it_never_prunes_active_runs(workflow_factory):
    workflow = workflow_factory(chain("active", 1))
    queued = _run(workflow, days_old=90, status=Run.Status.QUEUED)
    running = _run(workflow, days_old=90, status=Run.Status.RUNNING)
    call_command("pruneruns")
    assert _ids(workflow) == {queued.pk, running.pk}


def test_it_prunes_sub_workflow_runs_with_their_parent(workflow_factory):
    workflow = workflow_factory(chain("parents", 1))
    child_workflow = workflow_factory(chain("children", 1))
    parent = _run(workflow, days_old=60)
    child = _run(child_workflow, days_old=60, parent=parent, events=3)
    summary = call_command("pruneruns")
    assert summary == "Pruned 2 runs (2 steps, 5 events) in 1 workflows."
    assert not Run.objects.filter(pk__in=[parent.pk, child.pk]).exists()


def test_its_dry_run_counts_the_same_and_deletes_nothing(workflow_factory):
    workflow = workflow_factory(chain("dry", 1))
    parent = _run(workflow, days_old=60)
    _run(workflow, days_old=60, parent=parent)
    _run(workflow, days_old=1)
    before = _ids(workflow)
    assert call_command("pruneruns", "--dry-run") == (
        "Would prune 2 runs (2 steps, 4 events) in 1 workflows."
    )
    assert _ids(workflow) == before
    assert call_command("pruneruns") == "Pruned 2 runs (2 steps, 4 events) in 1 workflows."


def test_it_prunes_only_the_named_workflows(workflow_factory):
    one = workflow_factory(chain("one", 1))
    two = workflow_factory(chain("two", 1))
    _run(one, days_old=60)
    kept = _run(two, days_old=60)
    call_command("pruneruns", "--workflow", "one")
    assert _ids(one) == set()
    assert _ids(two) == {kept.pk}


def test_it_refuses_an_unknown_workflow(db):
    with pytest.raises(CommandError, match="No workflow with slug nope"):
        call_command("pruneruns", "--workflow", "nope")


@pytest.mark.parametrize(
    "retention",
    [5, {"days": "30"}, {"days": 0}, {"count": -1}, {"count": True}, {"weeks": 2}],
)
def test_it_rejects_a_bad_retention_policy(retention):
    with pytest.raises(DefinitionError) as rejected:
        compile_definition(chain("bad", 1, retention=retention))
    assert any(e["field"].startswith("policies.retention") for e in rejected.value.errors)


def test_it_adds_no_retention_to_definitions_without_one():
    # Definitions written before retention existed keep their canonical form (and hash).
    assert "retention" not in compile_definition(chain("plain", 1))["policies"]
