import json

import pytest
from django.urls import reverse

from runs.models import Run, StepRun
from tests.console.conftest import record_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_run(pipeline_run):
    Run.objects.filter(pk=pipeline_run.pk).update(status=Run.Status.RUNNING)
    StepRun.objects.create(
        run=pipeline_run,
        step_id="fetch",
        node_type="http",
        status=StepRun.Status.SUCCEEDED,
        attempt=2,
        input={"url": "http://127.0.0.1/", "headers": {"Authorization": "***"}},
        output={"status": 200, "body": "hello"},
        logs="GET http://127.0.0.1/\n200 OK",
        duration_ms=1234,
    )
    StepRun.objects.create(
        run=pipeline_run,
        step_id="double",
        node_type="python",
        status=StepRun.Status.RUNNING,
        attempt=1,
        logs="working",
    )
    record_event(pipeline_run, "run.started", publish=False)
    pipeline_run.refresh_from_db()
    return pipeline_run


def page(client, run):
    return client.get(reverse("admin:runs_run_change", args=[run.pk]))


def test_it_shows_status_progress_and_each_step(alice_client, running_run):
    response = page(alice_client, running_run)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="run-status" class="status status-running"' in html
    # One of four steps is done; the other three are running or pending.
    assert "<b>1</b> of <b>4</b> steps done" in html
    assert "width: 25%" in html
    assert 'data-step="fetch" data-status="succeeded"' in html
    assert 'data-step="double" data-status="running"' in html
    assert 'data-step="publish" data-status="pending"' in html
    # The step's attempt, duration, input (masked as stored), output and logs.
    assert "1.2 s" in html
    assert "&quot;Authorization&quot;: &quot;***&quot;" in html
    assert "&quot;body&quot;: &quot;hello&quot;" in html
    assert "200 OK" in html
    # The diagram is the same picture, coloured by status.
    assert '<svg class="dag"' in html
    assert 'class="node" data-step="square" data-status="pending"' in html


def test_it_gives_the_page_script_the_event_cursor(alice_client, running_run):
    html = page(alice_client, running_run).content.decode()
    config = html.split('<script id="run-page-config" type="application/json">')[1]
    config = json.loads(config.split("</script>")[0])
    assert config["after"] == running_run.last_event_seq == 1
    assert config["socketPath"] == f"/ws/runs/{running_run.pk}/"


def test_it_offers_cancel_on_an_active_run_and_retry_resume_on_a_failed_one(
    alice_client, running_run
):
    html = page(alice_client, running_run).content.decode()
    assert 'id="cancel-run"' in html
    assert 'data-show-when="active" >' in html or 'data-show-when="active">' in html
    Run.objects.filter(pk=running_run.pk).update(status=Run.Status.FAILED, error="boom")
    html = page(alice_client, running_run).content.decode()
    assert 'data-show-when="unsuccessful" >' in html or 'data-show-when="unsuccessful">' in html
    assert "boom" in html


def test_it_shows_a_viewer_the_run_but_no_actions(client, bob, running_run):
    client.force_login(bob)
    response = page(client, running_run)
    assert response.status_code == 200
    html = response.content.decode()
    assert "steps done" in html
    for action in ("cancel-run", "retry-run", "resume-run"):
        assert action not in html


def test_it_refuses_the_run_page_to_a_user_without_view_permission(client, charlie, running_run):
    client.force_login(charlie)
    assert page(client, running_run).status_code == 403
    state = client.get(reverse("admin:runs_run_state", args=[running_run.pk]))
    assert state.status_code == 403


def test_it_answers_404_for_an_unknown_run(alice_client):
    assert alice_client.get(reverse("admin:runs_run_change", args=[999999])).status_code == 404


def test_it_serves_the_run_state_as_json(alice_client, running_run):
    response = alice_client.get(reverse("admin:runs_run_state", args=[running_run.pk]))
    state = response.json()
    assert state["status"] == "running"
    assert state["progress"] == {"done": 1, "total": 4}
    assert [s["id"] for s in state["steps"]] == ["fetch", "double", "square", "publish"]
    assert state["steps"][0]["output"] == {"status": 200, "body": "hello"}
    assert state["last_event_seq"] == 1


def test_it_refuses_cancel_from_a_viewer_and_changes_nothing(client, bob, running_run):
    client.force_login(bob)
    response = client.post(reverse("admin:runs_run_cancel", args=[running_run.pk]))
    assert response.status_code == 403
    running_run.refresh_from_db()
    assert running_run.status == "running"
    assert running_run.cancel_requested_at is None


def test_it_refuses_get_on_an_action_url(alice_client, running_run):
    response = alice_client.get(reverse("admin:runs_run_cancel", args=[running_run.pk]))
    assert response.status_code == 405


def test_it_lists_runs_with_live_status_pills_and_filters(alice_client, running_run):
    url = reverse("admin:runs_run_changelist")
    html = alice_client.get(url).content.decode()
    assert f'data-run-status="{running_run.pk}"' in html
    assert 'id="live-indicator"' in html
    assert "appstrate/runs_list.js" in html
    for query in (
        "status__exact=running",
        "trigger__exact=manual",
        f"workflow__id__exact={running_run.workflow_id}",
        "created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
    ):
        response = alice_client.get(f"{url}?{query}")
        assert response.status_code == 200
        assert f'data-run-status="{running_run.pk}"' in response.content.decode()
    assert (
        f'data-run-status="{running_run.pk}"'
        not in alice_client.get(f"{url}?status__exact=failed").content.decode()
    )


def test_it_offers_bulk_cancel_only_to_users_who_may_cancel(client, alice, bob, running_run):
    url = reverse("admin:runs_run_changelist")
    client.force_login(alice)
    assert "cancel_selected" in client.get(url).content.decode()
    client.force_login(bob)
    html = client.get(url).content.decode()
    assert "cancel_selected" not in html
    # Posting the action anyway changes nothing.
    client.post(url, {"action": "cancel_selected", "_selected_action": [running_run.pk]})
    running_run.refresh_from_db()
    assert running_run.cancel_requested_at is None


def test_it_bulk_cancels_selected_runs_and_reports_finished_ones(alice_client, pipeline):
    version = pipeline.current_version
    active = [Run.objects.create(workflow=pipeline, version=version) for _ in range(2)]
    done = Run.objects.create(workflow=pipeline, version=version, status=Run.Status.SUCCEEDED)
    url = reverse("admin:runs_run_changelist")
    response = alice_client.post(
        url,
        {"action": "cancel_selected", "_selected_action": [r.pk for r in [*active, done]]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert "Cancelled 2 run(s)." in messages
    assert "1 run(s) had already finished." in messages
    assert {r.status for r in Run.objects.filter(pk__in=[r.pk for r in active])} == {"cancelled"}
    done.refresh_from_db()
    assert done.status == "succeeded"


def test_it_cancels_a_run_from_its_page(alice_client, running_run):
    response = alice_client.post(reverse("admin:runs_run_cancel", args=[running_run.pk]))
    assert response.status_code == 302
    running_run.refresh_from_db()
    assert running_run.status == "cancelled"
    # Cancelling again is refused with a message, not an error page.
    response = alice_client.post(
        reverse("admin:runs_run_cancel", args=[running_run.pk]), follow=True
    )
    assert response.status_code == 200
    assert "already cancelled" in response.content.decode()


def test_it_retries_and_resumes_a_failed_run_as_new_runs(alice_client, alice, running_run):
    Run.objects.filter(pk=running_run.pk).update(status=Run.Status.FAILED)
    response = alice_client.post(reverse("admin:runs_run_retry", args=[running_run.pk]))
    retry = Run.objects.get(origin_run=running_run, trigger="retry")
    assert response["Location"] == reverse("admin:runs_run_change", args=[retry.pk])
    assert retry.input["label"] == running_run.input["label"] == "x"
    assert retry.triggered_by == alice
    response = alice_client.post(reverse("admin:runs_run_resume", args=[running_run.pk]))
    resumed = Run.objects.get(origin_run=running_run, trigger="resume")
    assert response["Location"] == reverse("admin:runs_run_change", args=[resumed.pk])
    assert resumed.version_id == running_run.version_id
    # The completed step is carried over; the rest will execute.
    statuses = dict(resumed.steps.values_list("step_id", "status"))
    assert statuses.pop("fetch") == "succeeded"
    assert "succeeded" not in statuses.values()


def test_it_refuses_retry_of_an_active_run_with_a_message(alice_client, running_run):
    response = alice_client.post(
        reverse("admin:runs_run_retry", args=[running_run.pk]), follow=True
    )
    assert response.status_code == 200
    assert "still running" in response.content.decode()
    assert Run.objects.count() == 1


def test_it_refuses_retry_and_resume_to_a_viewer(client, bob, running_run):
    Run.objects.filter(pk=running_run.pk).update(status=Run.Status.FAILED)
    client.force_login(bob)
    for name in ("admin:runs_run_retry", "admin:runs_run_resume"):
        assert client.post(reverse(name, args=[running_run.pk])).status_code == 403
    assert Run.objects.count() == 1


def test_it_shows_the_lines_a_running_step_already_logged(alice_client, running_run):
    # The engine writes a step's logs column when the attempt ends; until then, events.
    StepRun.objects.filter(run=running_run, step_id="double").update(logs="", attempt=2)
    record_event(running_run, "step.log", {"step": "double", "attempt": 1, "text": "old try"})
    record_event(running_run, "step.log", {"step": "double", "attempt": 2, "text": "line one"})
    record_event(running_run, "step.log", {"step": "fetch", "attempt": 2, "text": "not mine"})
    record_event(running_run, "step.log", {"step": "double", "attempt": 2, "text": "line two"})
    state = alice_client.get(reverse("admin:runs_run_state", args=[running_run.pk])).json()
    double = next(s for s in state["steps"] if s["id"] == "double")
    assert double["logs"] == "line one\nline two"
    assert state["last_event_seq"] == 5
    # Finished steps keep their stored logs.
    assert state["steps"][0]["logs"] == "GET http://127.0.0.1/\n200 OK"


@pytest.mark.parametrize("run_id", ["abc", "99999999999999999999999", "-1", "1%00"])
def test_it_answers_hostile_run_ids_without_an_error(alice_client, run_id):
    for suffix in ("change/", "state/"):
        response = alice_client.get(f"/admin/runs/run/{run_id}/{suffix}")
        assert response.status_code in (302, 404)
    response = alice_client.post(f"/admin/runs/run/{run_id}/cancel/")
    assert response.status_code in (302, 404)


def test_it_masks_a_known_secret_that_a_stored_value_still_holds(alice_client, running_run):
    from credentials import masking

    masking.remember(["hunter2-very-secret"])
    StepRun.objects.filter(run=running_run, step_id="fetch").update(
        output={"echo": "token=hunter2-very-secret"}, logs="sent hunter2-very-secret"
    )
    html = page(alice_client, running_run).content.decode()
    state = alice_client.get(reverse("admin:runs_run_state", args=[running_run.pk])).content
    assert "hunter2-very-secret" not in html
    assert b"hunter2-very-secret" not in state
    assert "token=***" in html
