import logging

import pytest

from runs.services import start_run
from workflows.definition import DefinitionError
from workflows.flows import Workflow as FlowWorkflow
from workflows.flows import unregister
from workflows.models import Workflow
from workflows.services import save_definition, sync_code_workflows

pytestmark = pytest.mark.django_db


def definition(seconds=1, **extra):
    return {"steps": [{"id": "pause", "type": "wait", "config": {"seconds": seconds}}], **extra}


@pytest.fixture
def workflow():
    return Workflow.objects.create(slug="console-flow", source=Workflow.Source.ADMIN)


@pytest.fixture
def declared():
    made = []

    def declare(slug, seconds=0, **kwargs):
        made.append(slug)
        flow = FlowWorkflow(slug, **kwargs)
        flow.wait("pause", seconds=seconds)
        return flow

    yield declare
    for slug in made:
        unregister(slug)


def test_it_stores_each_distinct_definition_once_and_numbers_versions(workflow):
    first = save_definition(workflow, definition(1))
    assert (first.number, workflow.current_version) == (1, first)
    assert save_definition(workflow, definition(1)) == first  # unchanged: no new version
    second = save_definition(workflow, definition(2))
    assert second.number == 2 and second.content_hash != first.content_hash
    again = save_definition(workflow, definition(1))  # back to the first content
    assert again == first
    workflow.refresh_from_db()
    assert workflow.current_version == first
    assert workflow.definition == first.definition
    assert workflow.versions.count() == 2


def test_it_pins_runs_to_the_version_they_started_with(workflow):
    v1 = save_definition(workflow, definition(1))
    run = start_run(workflow, input={}, submit=False)
    v2 = save_definition(workflow, definition(5, description="slower"))
    run.refresh_from_db()
    v1.refresh_from_db()
    assert run.version == v1
    assert v1.definition["steps"][0]["config"] == {"seconds": 1}
    assert start_run(workflow, input={}, submit=False).version == v2
    workflow.refresh_from_db()
    assert workflow.description == "slower"


def test_it_changes_nothing_when_the_definition_is_invalid(workflow):
    v1 = save_definition(workflow, definition(1))
    with pytest.raises(DefinitionError):
        save_definition(workflow, definition(-1))
    with pytest.raises(DefinitionError) as caught:
        save_definition(workflow, {**definition(2), "slug": "someone-else"})
    assert caught.value.errors[0]["field"] == "slug"
    workflow.refresh_from_db()
    assert (workflow.current_version, workflow.versions.count()) == (v1, 1)


def test_it_syncs_code_workflows_creating_updating_and_retiring(declared):
    declared("code-a", seconds=1)
    report = sync_code_workflows()
    assert "code-a" in report.created
    a = Workflow.objects.get(slug="code-a")
    assert (a.source, a.retired, a.current_version.number) == ("code", False, 1)

    assert "code-a" in sync_code_workflows().unchanged
    unregister("code-a")
    declared("code-a", seconds=2)
    assert "code-a" in sync_code_workflows().updated
    a.refresh_from_db()
    assert a.current_version.number == 2

    unregister("code-a")
    assert "code-a" in sync_code_workflows().retired
    a.refresh_from_db()
    assert a.retired and a.current_version.number == 2

    declared("code-a", seconds=2)
    sync_code_workflows()
    a.refresh_from_db()
    assert not a.retired and a.versions.count() == 2


def test_it_never_overwrites_a_console_workflow_with_the_same_slug(workflow, declared):
    v1 = save_definition(workflow, definition(1))
    declared("console-flow", seconds=9)
    report = sync_code_workflows()
    assert "console-flow" in report.failed
    workflow.refresh_from_db()
    assert (workflow.source, workflow.current_version) == ("admin", v1)


def test_it_skips_and_logs_an_invalid_code_workflow(declared, caplog):
    declared("code-bad", seconds=-1)
    with caplog.at_level(logging.ERROR, logger="workflows"):
        report = sync_code_workflows()
    assert "code-bad" in report.failed
    assert not Workflow.objects.filter(slug="code-bad").exists()
    assert "code-bad" in caplog.text
    assert {"demo-pipeline", "demo-flaky", "demo-long"} <= set(
        Workflow.objects.filter(source="code", retired=False).values_list("slug", flat=True)
    )


def test_it_has_the_demo_workflows_after_migrate():
    # pytest-django ran migrate for the test database; post_migrate synced the code workflows.
    demo = Workflow.objects.get(slug="demo-pipeline")
    assert demo.source == "code" and demo.current_version is not None
    assert [s["id"] for s in demo.current_version.definition["steps"]] == [
        "generate",
        "transform",
        "check",
        "big",
        "small",
        "pause",
        "summarise",
    ]


@pytest.mark.django_db(transaction=True)
def test_it_syncs_safely_when_several_processes_start_at_once(declared):
    import threading

    from django.db import connection

    declared("race-flow", seconds=3)
    barrier = threading.Barrier(4)
    failures = []

    def sync():
        try:
            barrier.wait()
            sync_code_workflows()
        except Exception as exc:  # collected: the assertion below names it
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    race = Workflow.objects.get(slug="race-flow")
    assert race.versions.count() == 1 and race.current_version.number == 1
