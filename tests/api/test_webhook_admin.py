import time

import pytest

from api.signatures import sign
from runs.models import Run
from workflows.models import WebhookTrigger

pytestmark = pytest.mark.django_db


def test_it_creates_a_signed_webhook_and_shows_its_secret_once(alice_client, workflow, client):
    response = alice_client.post(
        "/admin/workflows/webhooktrigger/add/",
        {
            "workflow": workflow.pk,
            "name": "GitHub push",
            "enabled": "on",
            "require_signature": "on",
        },
    )
    assert response.status_code == 200
    hook = WebhookTrigger.objects.get(name="GitHub push")
    assert len(hook.token) >= 40 and hook.signing_secret.startswith("whsec_")
    page = response.content.decode()
    assert hook.signing_secret in page and f"/api/webhooks/{hook.token}" in page
    # The change page shows the URL but never the secret again.
    change = alice_client.get(f"/admin/workflows/webhooktrigger/{hook.pk}/change/").content.decode()
    assert f"/api/webhooks/{hook.token}" in change
    assert hook.signing_secret not in change
    # And the generated pair works end to end.
    body, now = b'{"count": 2}', int(time.time())
    delivered = client.post(
        f"/api/webhooks/{hook.token}",
        body,
        content_type="application/json",
        headers={
            "X-Appstrate-Timestamp": str(now),
            "X-Appstrate-Signature": sign(hook.signing_secret, now, body),
        },
    )
    assert delivered.status_code == 201
    assert Run.objects.get().trigger == "webhook"


def test_it_creates_an_unsigned_webhook_when_asked(alice_client, workflow):
    alice_client.post(
        "/admin/workflows/webhooktrigger/add/",
        {"workflow": workflow.pk, "name": "internal", "enabled": "on"},
    )
    assert WebhookTrigger.objects.get(name="internal").signing_secret == ""


def test_it_rotates_a_signing_secret_and_shows_the_new_one_once(alice_client, workflow):
    hook = WebhookTrigger.objects.create(
        workflow=workflow, name="h", token="t" * 43, signing_secret="whsec_old"
    )
    response = alice_client.post(
        "/admin/workflows/webhooktrigger/",
        {"action": "rotate_signing_secret", "_selected_action": [hook.pk]},
    )
    hook.refresh_from_db()
    assert hook.signing_secret != "whsec_old"
    assert hook.signing_secret in response.content.decode()
