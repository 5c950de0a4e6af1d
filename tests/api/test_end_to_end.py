"""The API drives a real run to the end with whatever executor the tier gives: threads in this
process at tier 0, a real `celery worker` process at tier 2."""

import time

import pytest

from infra.registry import get_executor, get_mode
from tests.api.conftest import DEFINITION, store_workflow
from tests.api.helpers import assert_matches_openapi, make_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workflow(db):
    # Executed for real: on the default queue, which the tier 2 worker consumes.
    return store_workflow(DEFINITION)


@pytest.fixture
def executing(request):
    if get_mode().executor == "celery":
        request.getfixturevalue("celery_worker_process")
        yield
        return
    get_executor().start()
    try:
        yield
    finally:
        get_executor().stop()


def _wait_final(client, run_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/api/runs/{run_id}").json()
        if data["status"] not in ("queued", "running"):
            return data
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {data['status']} after {timeout} s")


def test_it_starts_follows_and_reads_a_run_to_success(executing, workflow, alice_token):
    client = make_client(alice_token[1])
    started = client.post(
        "/api/workflows/numbers/runs", {"input": {"count": 2}}, content_type="application/json"
    )
    assert started.status_code == 201
    run_id = started.json()["id"]

    done = _wait_final(client, run_id)
    assert done["status"] == "succeeded", done
    assert [(s["step_id"], s["status"]) for s in done["steps"]] == [("pause", "succeeded")]

    events = client.get(f"/api/runs/{run_id}/events")
    assert_matches_openapi(events, "GET", "/api/runs/{run_id}/events")
    listed = events.json()["events"]
    types = [e["type"] for e in listed]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    assert "step.succeeded" in types
    assert [e["seq"] for e in listed] == list(range(1, len(listed) + 1))
    # A client that saw everything gets nothing more.
    after = client.get(f"/api/runs/{run_id}/events", {"after": listed[-1]["seq"]}).json()
    assert after["events"] == []

    # Cancelling a finished run is refused and changes nothing.
    refused = client.post(f"/api/runs/{run_id}/cancel", content_type="application/json")
    assert refused.status_code == 409
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"
