import pytest
from django.urls import reverse

from runs.models import Run

pytestmark = pytest.mark.django_db


def change_url(workflow):
    return reverse("admin:workflows_workflow_change", args=[workflow.pk])


def run_url(workflow):
    return reverse("admin:workflows_workflow_run", args=[workflow.pk])


def test_it_draws_the_dag_on_the_workflow_page(alice_client, pipeline):
    html = alice_client.get(change_url(pipeline)).content.decode()
    assert '<svg class="dag"' in html
    assert 'data-from="fetch" data-to="double"' in html
    assert 'id="run-now"' in html
    assert "No runs yet." in html


def test_it_lists_recent_runs_on_the_workflow_page(alice_client, pipeline_run):
    html = alice_client.get(change_url(pipeline_run.workflow)).content.decode()
    assert reverse("admin:runs_run_change", args=[pipeline_run.pk]) in html


def test_it_builds_the_run_form_from_the_input_schema(alice_client, pipeline):
    html = alice_client.get(run_url(pipeline)).content.decode()
    assert 'name="count"' in html and 'type="number"' in html and 'value="5"' in html
    assert 'name="label"' in html and "required" in html
    assert '<option value="&quot;safe&quot;" selected>safe</option>' in html
    assert 'type="checkbox" name="dry_run"' in html


def test_it_shows_validation_errors_on_the_fields_and_starts_nothing(alice_client, pipeline):
    response = alice_client.post(run_url(pipeline), {"count": "0", "mode": '"nope"'})
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) >= {"label", "mode", "count"}
    assert not Run.objects.exists()


def test_it_starts_a_run_with_the_typed_input_and_opens_its_page(alice_client, alice, pipeline):
    response = alice_client.post(
        run_url(pipeline), {"count": "3", "label": "nightly", "mode": '"fast"'}
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:runs_run_change", args=[run.pk])
    assert run.input == {"count": 3, "label": "nightly", "mode": "fast", "dry_run": False}
    assert run.triggered_by == alice
    assert run.trigger == "manual"


def test_it_puts_schema_errors_from_the_service_on_the_fields(alice_client, pipeline):
    # The form knows nothing of multipleOf; the run service's schema check does.
    pipeline.current_version.definition["input_schema"]["properties"]["count"]["multipleOf"] = 2
    pipeline.current_version.save()
    response = alice_client.post(run_url(pipeline), {"count": "3", "label": "x"})
    assert response.status_code == 400
    assert "multiple of 2" in str(response.context["form"].errors["count"])
    assert not Run.objects.exists()


def test_it_refuses_run_now_to_a_viewer(client, bob, pipeline):
    client.force_login(bob)
    html = client.get(change_url(pipeline)).content.decode()
    assert '<svg class="dag"' in html
    assert 'id="run-now"' not in html
    assert (
        "run-now-link"
        not in client.get(reverse("admin:workflows_workflow_changelist")).content.decode()
    )
    assert client.get(run_url(pipeline)).status_code == 403
    assert client.post(run_url(pipeline), {"label": "x"}).status_code == 403
    assert not Run.objects.exists()


def test_it_disables_and_enables_workflows_in_bulk(alice_client, pipeline):
    url = reverse("admin:workflows_workflow_changelist")
    alice_client.post(url, {"action": "disable_selected", "_selected_action": [pipeline.pk]})
    pipeline.refresh_from_db()
    assert pipeline.enabled is False
    # A disabled workflow offers no run-now button and refuses runs with a message.
    assert 'id="run-now"' not in alice_client.get(change_url(pipeline)).content.decode()
    response = alice_client.post(run_url(pipeline), {"label": "x"})
    assert response.status_code == 400
    assert not Run.objects.exists()
    alice_client.post(url, {"action": "enable_selected", "_selected_action": [pipeline.pk]})
    pipeline.refresh_from_db()
    assert pipeline.enabled is True


def test_it_offers_a_viewer_no_workflow_actions(client, bob, pipeline):
    client.force_login(bob)
    html = client.get(reverse("admin:workflows_workflow_changelist")).content.decode()
    assert "disable_selected" not in html
    client.post(
        reverse("admin:workflows_workflow_changelist"),
        {"action": "disable_selected", "_selected_action": [pipeline.pk]},
    )
    pipeline.refresh_from_db()
    assert pipeline.enabled is True


def test_it_answers_404_for_an_absurd_workflow_id(alice_client):
    assert (
        alice_client.get("/admin/workflows/workflow/99999999999999999999999/run/").status_code
        == 404
    )
