import json
import time

import pytest

from api.signatures import sign
from runs.models import Run
from tests.api.helpers import assert_matches_openapi
from workflows.models import WebhookTrigger

pytestmark = pytest.mark.django_db

SECRET = "whsec_0123456789"
HOOK = "/api/webhooks/{token}"


@pytest.fixture
def open_hook(workflow):
    return WebhookTrigger.objects.create(workflow=workflow, name="open", token="open-hook-token")


@pytest.fixture
def signed_hook(workflow):
    return WebhookTrigger.objects.create(
        workflow=workflow, name="signed", token="signed-hook-token", signing_secret=SECRET
    )


def _deliver(client, hook, body=b'{"count": 2}', *, headers=None, content_type="application/json"):
    response = client.post(
        f"/api/webhooks/{hook.token}", body, content_type=content_type, headers=headers or {}
    )
    assert_matches_openapi(response, "POST", HOOK)
    return response


def _signed_headers(body: bytes, timestamp: int | None = None, secret: str = SECRET):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Appstrate-Timestamp": str(timestamp),
        "X-Appstrate-Signature": sign(secret, timestamp, body),
    }


def test_it_starts_a_run_with_the_body_as_input(client, open_hook):
    response = _deliver(client, open_hook, b'{"count": 5, "label": "push"}')
    assert response.status_code == 201
    run = Run.objects.get(pk=response.json()["run_id"])
    assert (run.trigger, run.input, run.triggered_by) == (
        "webhook",
        {"count": 5, "label": "push"},
        None,
    )


def test_it_returns_the_same_run_for_a_repeated_delivery_id(client, open_hook):
    headers = {"X-Appstrate-Delivery": "evt_123"}
    first = _deliver(client, open_hook, headers=headers)
    again = _deliver(client, open_hook, headers=headers)
    other = _deliver(client, open_hook, headers={"X-Appstrate-Delivery": "evt_124"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["run_id"] == again.json()["run_id"] != other.json()["run_id"]
    assert Run.objects.count() == 2


def test_it_accepts_a_valid_signature(client, signed_hook):
    body = b'{"count": 1}'
    response = _deliver(client, signed_hook, body, headers=_signed_headers(body))
    assert response.status_code == 201
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        (lambda body: {}, "signature_missing"),
        (lambda body: _signed_headers(body, secret="not-the-secret"), "signature_invalid"),
        (lambda body: _signed_headers(b'{"count": 999}'), "signature_invalid"),
        (
            lambda body: {**_signed_headers(body), "X-Appstrate-Signature": "sha256=00"},
            "signature_invalid",
        ),
        (lambda body: _signed_headers(body, int(time.time()) - 301), "signature_expired"),
        (lambda body: _signed_headers(body, int(time.time()) + 3600), "signature_expired"),
    ],
)
def test_it_refuses_missing_wrong_and_expired_signatures(client, signed_hook, make_headers, code):
    body = b'{"count": 1}'
    response = _deliver(client, signed_hook, body, headers=make_headers(body))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert Run.objects.count() == 0


def test_it_starts_nothing_new_when_a_signed_request_is_replayed(client, signed_hook):
    body = b'{"count": 1}'
    headers = _signed_headers(body)
    first = _deliver(client, signed_hook, body, headers=headers)
    # The same captured request sent again inside the window: the same run, nothing new.
    replay = _deliver(client, signed_hook, body, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.count() == 1


def test_it_refuses_a_signed_request_replayed_after_the_window(client, signed_hook, settings):
    settings.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS = 2
    body = b'{"count": 1}'
    captured = _signed_headers(body, int(time.time()) - 3)
    response = _deliver(client, signed_hook, body, headers=captured)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_expired"
    assert Run.objects.count() == 0


def test_it_answers_422_with_the_field_errors_of_the_input_schema(client, open_hook):
    response = _deliver(client, open_hook, json.dumps({"count": 0, "colour": "red"}).encode())
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert any("count" in f for f in fields)
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"count": NaN}', "application/json", 400),
        (b'{"count": 1}', "text/plain", 415),
        (b"count=1", "application/x-www-form-urlencoded", 415),
        (b'{"count": 1, "label": "\\u0000"}', "application/json", 400),
        (b'{"count": 1, "label": "\\ud800"}', "application/json", 400),
    ],
)
def test_it_refuses_malformed_bodies(client, open_hook, body, content_type, status):
    response = _deliver(client, open_hook, body, content_type=content_type)
    assert response.status_code == status
    assert Run.objects.count() == 0


def test_it_answers_413_above_the_body_limit(client, open_hook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    body = json.dumps({"count": 1, "label": "x" * 200}).encode()
    response = _deliver(client, open_hook, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert Run.objects.count() == 0


def test_it_answers_404_for_unknown_and_disabled_hooks(client, open_hook):
    open_hook.enabled = False
    open_hook.save()
    for token in ("open-hook-token", "nope", "a" * 65):
        response = client.post(f"/api/webhooks/{token}", b"{}", content_type="application/json")
        assert response.status_code == 404
        assert_matches_openapi(response, "POST", HOOK)
    assert Run.objects.count() == 0


def test_it_answers_409_when_the_workflow_is_disabled(client, open_hook, workflow):
    workflow.enabled = False
    workflow.save()
    assert _deliver(client, open_hook).status_code == 409
