import pytest

from api.tokens import create_token
from runs.events import append_event
from runs.models import Run, RunEvent, StepRun
from tests.api.helpers import assert_matches_openapi, make_client

pytestmark = pytest.mark.django_db

START = "/api/workflows/{slug}/runs"


def _start(client, body=None, key=None, slug="numbers"):
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post(
        f"/api/workflows/{slug}/runs",
        body if body is not None else {"input": {"count": 2}},
        content_type="application/json",
        headers=headers,
    )
    assert_matches_openapi(response, "POST", START)
    return response


def test_it_starts_a_run_with_the_given_input(alice_api, alice, workflow):
    response = _start(alice_api, {"input": {"count": 3, "label": "x"}})
    assert response.status_code == 201
    data = response.json()
    run = Run.objects.get(pk=data["id"])
    assert (data["workflow"], data["version"], data["trigger"]) == ("numbers", 1, "api")
    assert data["input"] == {"count": 3, "label": "x"} == run.input
    assert run.triggered_by == alice
    assert data["status"] == "queued"
    assert list(run.events.values_list("type", flat=True)) == ["run.queued"]


def test_it_returns_the_same_run_for_the_same_idempotency_key(alice_api, workflow):
    first = _start(alice_api, key="order-42")
    again = _start(alice_api, key="order-42")
    other = _start(alice_api, key="order-43")
    # It should answer 201 once, then 200 with the very same run.
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert Run.objects.count() == 2


def test_it_starts_a_new_run_each_time_without_a_key(alice_api, workflow):
    ids = {_start(alice_api).json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_it_scopes_idempotency_keys_to_the_user(alice_api, django_user_model, workflow):
    dave = django_user_model.objects.create_superuser("dave", "dave@example.com", "pw")
    _, text = create_token(dave, name="d", scopes=["run"])
    alices = _start(alice_api, key="same").json()["id"]
    daves = _start(make_client(text), key="same")
    # Dave's key never returns Alice's run.
    assert daves.status_code == 201
    assert daves.json()["id"] != alices


def test_it_answers_422_with_field_errors_for_input_that_breaks_the_schema(alice_api, workflow):
    response = _start(alice_api, {"input": {"count": "three", "extra": 1}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert any("count" in field for field in error["fields"])
    response = _start(alice_api, {"input": {}})
    assert response.status_code == 422
    assert Run.objects.count() == 0


def test_it_answers_409_for_a_disabled_workflow_and_404_for_an_unknown_one(alice_api, workflow):
    workflow.enabled = False
    workflow.save()
    response = _start(alice_api)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "workflow_unavailable"
    assert _start(alice_api, slug="nope").status_code == 404
    assert Run.objects.count() == 0


def test_it_reads_a_run_with_its_steps(alice_api, workflow):
    run_id = _start(alice_api).json()["id"]
    StepRun.objects.create(
        run_id=run_id,
        step_id="pause",
        node_type="wait",
        status="succeeded",
        attempt=1,
        output={"waited": 0},
        duration_ms=3,
    )
    response = alice_api.get(f"/api/runs/{run_id}")
    assert response.status_code == 200
    assert_matches_openapi(response, "GET", "/api/runs/{run_id}")
    steps = response.json()["steps"]
    assert [(s["step_id"], s["status"], s["output"]) for s in steps] == [
        ("pause", "succeeded", {"waited": 0})
    ]


@pytest.mark.parametrize("run_id", ["999999", "9223372036854775807", "99999999999999999999999"])
def test_it_answers_404_for_unknown_runs(alice_api, run_id):
    for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/events"):
        response = alice_api.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    response = alice_api.post(f"/api/runs/{run_id}/cancel", content_type="application/json")
    assert response.status_code == 404


def test_it_lists_events_after_a_sequence_number_in_pages(alice_api, workflow):
    run = Run.objects.get(pk=_start(alice_api).json()["id"])
    for i in range(4):
        append_event(run, "step.log", {"line": i})
    url = f"/api/runs/{run.pk}/events"
    everything = alice_api.get(url)
    assert_matches_openapi(everything, "GET", "/api/runs/{run_id}/events")
    assert [e["seq"] for e in everything.json()["events"]] == [1, 2, 3, 4, 5]
    page = alice_api.get(url, {"after": 1, "limit": 2}).json()
    assert [e["seq"] for e in page["events"]] == [2, 3]
    assert (page["next_after"], page["has_more"]) == (3, True)
    rest = alice_api.get(url, {"after": page["next_after"]}).json()
    assert [e["payload"] for e in rest["events"]] == [{"line": 2}, {"line": 3}]
    assert (rest["next_after"], rest["has_more"]) == (5, False)
    empty = alice_api.get(url, {"after": 99}).json()
    assert (empty["events"], empty["next_after"]) == ([], 99)


@pytest.mark.parametrize(
    "query",
    ["after=-1", "after=x", "after=1.5", "limit=0", "limit=5000", "after=1&after=2", "page=2"],
)
def test_it_answers_400_for_bad_event_parameters(alice_api, workflow, query):
    run_id = _start(alice_api).json()["id"]
    response = alice_api.get(f"/api/runs/{run_id}/events?{query}")
    assert response.status_code == 400
    assert_matches_openapi(response, "GET", "/api/runs/{run_id}/events")


def test_it_cancels_a_run_and_answers_409_once_it_is_final(alice_api, workflow):
    run_id = _start(alice_api).json()["id"]
    response = alice_api.post(f"/api/runs/{run_id}/cancel", content_type="application/json")
    assert response.status_code == 200
    assert_matches_openapi(response, "POST", "/api/runs/{run_id}/cancel")
    assert response.json()["status"] == "cancelled"
    events = RunEvent.objects.filter(run_id=run_id, type="run.cancelled").count()
    again = alice_api.post(f"/api/runs/{run_id}/cancel", {}, content_type="application/json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_final"
    assert_matches_openapi(again, "POST", "/api/runs/{run_id}/cancel")
    # The refused cancel changed nothing.
    assert RunEvent.objects.filter(run_id=run_id, type="run.cancelled").count() == events == 1


def test_it_needs_the_cancel_scope_and_permission_to_cancel(alice, bob, workflow, alice_api):
    run_id = _start(alice_api).json()["id"]
    _, runner = create_token(alice, name="runner", scopes=["read", "run"])
    assert (
        make_client(runner)
        .post(f"/api/runs/{run_id}/cancel", content_type="application/json")
        .status_code
        == 403
    )
    _, viewer = create_token(bob, name="viewer", scopes=["read", "cancel"])
    assert (
        make_client(viewer)
        .post(f"/api/runs/{run_id}/cancel", content_type="application/json")
        .status_code
        == 403
    )
    assert Run.objects.get(pk=run_id).status == "queued"


def test_it_answers_405_with_allow_for_other_methods(alice_api, workflow):
    response = alice_api.delete("/api/workflows")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
