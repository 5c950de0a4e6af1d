import json

import pytest

from workflows.models import Workflow

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/workflows/workflow/add/"


def definition(seconds=1):
    return json.dumps({"steps": [{"id": "pause", "type": "wait", "config": {"seconds": seconds}}]})


def add(client, slug="console-made", text=None):
    data = {"slug": slug, "enabled": "on", "definition": text or definition()}
    data.update({"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    return client.post(ADD_URL, data)


def change_url(workflow):
    return f"/admin/workflows/workflow/{workflow.pk}/change/"


def test_it_creates_a_console_workflow_with_its_first_version(alice_client):
    response = add(alice_client)
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get(slug="console-made")
    assert workflow.source == "admin"
    assert workflow.current_version.number == 1
    assert workflow.definition["steps"][0]["policies"]["timeout_seconds"] == 300  # canonical


def test_it_shows_definition_errors_on_the_field_and_saves_nothing(alice_client):
    response = add(alice_client, text=definition(-5))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["definition"]
    assert errors == ["step 'pause', config.seconds: must be between 0 and 604800"]
    assert not Workflow.objects.filter(slug="console-made").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Enter a valid JSON."),
        ('{"steps": [], "owner": "x"}', "owner: unknown field"),
        (
            '{"steps": [{"id": "a", "type": "wait", "config": {"seconds": "{{ __import__ }}"}}]}',
            "names starting with '_'",
        ),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_it_rejects_bad_json_definitions_with_a_message(alice_client, text, message):
    response = add(alice_client, text=text)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["definition"]
    assert any(message in error for error in errors), errors
    assert not Workflow.objects.filter(slug="console-made").exists()


def test_it_stores_a_new_version_when_the_definition_changes_and_lists_versions(alice_client):
    add(alice_client)
    workflow = Workflow.objects.get(slug="console-made")
    data = {
        "enabled": "on",
        "definition": definition(7),
        "versions-TOTAL_FORMS": "1",
        "versions-INITIAL_FORMS": "1",
    }
    data["versions-0-id"] = str(workflow.current_version.pk)
    data["versions-0-workflow"] = str(workflow.pk)
    response = alice_client.post(change_url(workflow), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow.refresh_from_db()
    assert workflow.current_version.number == 2
    assert workflow.current_version.definition["steps"][0]["config"]["seconds"] == 7
    page = alice_client.get(change_url(workflow)).content.decode()
    assert workflow.current_version.content_hash in page
    assert workflow.versions.get(number=1).content_hash in page


def test_it_shows_code_workflows_read_only_except_enabled(alice_client):
    demo = Workflow.objects.get(slug="demo-pipeline")
    version = demo.current_version
    page = alice_client.get(change_url(demo))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="definition"' not in html
    assert "demo.generate_numbers" in html  # the definition is shown
    data = {
        "enabled": "",
        "definition": definition(99),
        "slug": "hijacked",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    response = alice_client.post(change_url(demo), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    demo.refresh_from_db()
    assert (demo.slug, demo.current_version, demo.enabled) == ("demo-pipeline", version, False)


def test_it_shows_versions_but_never_lets_them_change(alice_client):
    demo = Workflow.objects.get(slug="demo-flaky")
    url = f"/admin/workflows/workflowversion/{demo.current_version.pk}/change/"
    page = alice_client.get(url)
    assert page.status_code == 200
    assert "demo.flaky" in page.content.decode()
    assert alice_client.post(url, {"number": 5}).status_code == 403
    assert alice_client.get("/admin/workflows/workflowversion/add/").status_code == 403


def test_it_answers_a_huge_definition_with_a_client_error_and_saves_nothing(alice_client):
    huge = json.dumps({"steps": [], "description": "x" * 2_000_000})
    response = add(alice_client, text=huge)
    assert 400 <= response.status_code < 500
    assert not Workflow.objects.filter(slug="console-made").exists()
