import re

import pytest
from django.urls import reverse

from credentials import services
from credentials.models import Credential, SecretValue

pytestmark = pytest.mark.django_db

SECRET = "ghp_canary_0123456789abcdef"
ADD_URL = "admin:credentials_credential_add"


def change_url(credential):
    return reverse("admin:credentials_credential_change", args=[credential.pk])


def assert_no_secret(html: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in html
    # Every password input should render without a value attribute
    for tag in re.findall(r"<input[^>]*type=\"password\"[^>]*>", html):
        assert "value=" not in tag


def test_it_asks_for_the_type_before_the_form(alice_client):
    html = alice_client.get(reverse(ADD_URL)).content.decode()
    for label in ("API key in a header", "Bearer token", "HTTP basic auth", "Custom fields"):
        assert label in html
    assert "?type=bearer_token" in html


def test_it_creates_a_credential_from_the_admin(alice_client, alice, key_ring_k1):
    response = alice_client.post(
        reverse(ADD_URL) + "?type=bearer_token",
        {
            "name": "github",
            "description": "",
            "secret_token": SECRET,
            "allowed_hosts": "api.github.test\n*.github.test",
            "allowed_workflows": "sync-issues, nightly",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get(name="github")
    assert credential.type == "bearer_token"
    assert credential.allowed_hosts == ["api.github.test", "*.github.test"]
    assert credential.allowed_workflows == ["sync-issues", "nightly"]
    assert credential.updated_by == alice
    assert services.resolve("github", workflow_slug="nightly").values["token"] == SECRET
    assert SECRET not in SecretValue.objects.get().ciphertext


def test_it_never_renders_a_stored_secret_in_the_change_form(alice_client, github_token):
    response = alice_client.get(change_url(github_token))
    html = response.content.decode()
    assert response.status_code == 200
    assert_no_secret(html, SECRET, "ghp_canary")
    # It should say the secret is set, with a fingerprint of its last characters
    assert "Set (…cdef, key k1)" in html
    assert 'name="secret_token"' in html


def test_it_keeps_a_secret_when_the_input_is_left_blank(alice_client, github_token):
    data = {
        "description": "edited",
        "secret_token": "",
        "allowed_hosts": "api.github.test",
        "allowed_workflows": "sync-issues",
    }
    response = alice_client.post(change_url(github_token), data)
    assert response.status_code == 302
    assert services.resolve("github", workflow_slug="sync-issues").values["token"] == SECRET
    response = alice_client.post(
        change_url(github_token), {**data, "secret_token": "ghp_rotated_9999999999"}
    )
    assert response.status_code == 302
    assert (
        services.resolve("github", workflow_slug="sync-issues").values["token"]
        == "ghp_rotated_9999999999"
    )


def test_it_rejects_bad_input_without_echoing_the_secret_or_saving(alice_client, github_token):
    before = SecretValue.objects.get().ciphertext
    response = alice_client.post(
        change_url(github_token),
        {
            "secret_token": "ghp_typed_but_invalid_form_777",
            "allowed_hosts": "https://not-a-host/",
            "allowed_workflows": "not a slug",
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "is not a host" in html and "is not a workflow slug" in html
    assert_no_secret(html, "ghp_typed_but_invalid_form_777", SECRET)
    assert SecretValue.objects.get().ciphertext == before


def test_it_edits_custom_fields_without_rendering_them(alice_client, key_ring_k1):
    response = alice_client.post(
        reverse(ADD_URL) + "?type=fields",
        {
            "name": "warehouse",
            "plain_fields": "host=db.internal\nuser=etl",
            "secret_fields": "password=warehouse-pass-1234\napi_token=tok-5678-abcd",
            "allowed_hosts": "",
            "allowed_workflows": "*",
        },
    )
    assert response.status_code == 302
    credential = Credential.objects.get(name="warehouse")
    html = alice_client.get(change_url(credential)).content.decode()
    assert_no_secret(html, "warehouse-pass-1234", "tok-5678-abcd")
    assert "password (Set (…1234" in html or "password (Set (#" in html
    # Only the named field changes; NAME= removes one
    alice_client.post(
        change_url(credential),
        {
            "plain_fields": "host=db.internal",
            "secret_fields": "api_token=",
            "allowed_workflows": "*",
        },
    )
    values = services.resolve("warehouse", workflow_slug="x").values
    assert values == {"host": "db.internal", "password": "warehouse-pass-1234"}


def test_it_rejects_a_malformed_secret_line_without_echoing_it(alice_client, key_ring_k1):
    response = alice_client.post(
        reverse(ADD_URL) + "?type=fields",
        {"name": "w", "secret_fields": "just-a-secret-value-pasted", "allowed_workflows": "*"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Line 1 is not NAME=value." in html
    assert "just-a-secret-value-pasted" not in html
    assert not Credential.objects.exists()


def test_it_shows_which_workflows_use_it(alice_client, github_token):
    from workflows.models import Workflow, WorkflowVersion

    wf = Workflow.objects.create(slug="sync-issues", name="Sync issues")
    steps = [{"id": "fetch", "type": "http", "config": {"credential": "github"}}]
    wf.current_version = WorkflowVersion.objects.create(
        workflow=wf, number=1, content_hash="h", definition={"steps": steps}
    )
    wf.save()
    html = alice_client.get(change_url(github_token)).content.decode()
    assert "sync-issues" in html


def test_it_tests_a_credential_against_an_allowed_host(alice_client, key_ring_k1, echo_server):
    credential = services.create_credential(
        name="local",
        type="bearer_token",
        secrets={"token": SECRET},
        allowed_hosts=[echo_server.host],
        allowed_workflows=["*"],
    )
    echo_server.expected_auth = f"Bearer {SECRET}"
    test_url = reverse("admin:credentials_credential_test", args=[credential.pk])
    assert "Run the test" in alice_client.get(test_url).content.decode()

    response = alice_client.post(test_url, {"target": echo_server.url("/protected")}, follow=True)
    html = response.content.decode()
    assert f"Test of local passed: HTTP 200 from {echo_server.host}" in html
    assert echo_server.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"

    echo_server.expected_auth = "Bearer something-else"
    html = alice_client.post(
        test_url, {"target": echo_server.url("/protected")}, follow=True
    ).content.decode()
    assert "failed: HTTP 401" in html
    assert_no_secret(html, SECRET)


def test_it_refuses_to_test_against_a_host_that_is_not_allowed(
    alice_client, github_token, echo_server
):
    test_url = reverse("admin:credentials_credential_test", args=[github_token.pk])
    html = alice_client.post(
        test_url, {"target": echo_server.url("/echo")}, follow=True
    ).content.decode()
    assert f"{echo_server.host} is not in the allowed hosts" in html
    # Nothing should have been sent
    assert echo_server.requests == []


def test_it_does_not_follow_redirects_during_a_test(alice_client, key_ring_k1, echo_server):
    credential = services.create_credential(
        name="local",
        type="bearer_token",
        secrets={"token": SECRET},
        allowed_hosts=[echo_server.host],
        allowed_workflows=["*"],
    )
    test_url = reverse("admin:credentials_credential_test", args=[credential.pk])
    target = echo_server.url("/redirect?to=http://localhost:1/steal")
    html = alice_client.post(test_url, {"target": target}, follow=True).content.decode()
    assert "failed: HTTP 302" in html
    assert len(echo_server.requests) == 1


def test_it_offers_the_test_action_from_the_list(alice_client, github_token):
    response = alice_client.post(
        reverse("admin:credentials_credential_changelist"),
        {"action": "test_credential", "_selected_action": [github_token.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:credentials_credential_test", args=[github_token.pk]
    )


def test_it_keeps_people_without_permission_out(client, bob, github_token):
    client.force_login(bob)
    assert client.get(change_url(github_token)).status_code == 403
    test_url = reverse("admin:credentials_credential_test", args=[github_token.pk])
    assert client.post(test_url, {"target": "http://api.github.test/"}).status_code == 403


def test_it_shows_viewers_the_status_but_no_inputs(client, django_user_model, github_token):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("vera", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_credential"))
    client.force_login(viewer)
    response = client.get(change_url(github_token))
    html = response.content.decode()
    assert response.status_code == 200
    assert "token: set …cdef" in html
    assert_no_secret(html, SECRET)
    # A viewer gets no secret inputs at all
    assert 'type="password"' not in html


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("javascript:alert(1)", "Give an http:// or https:// URL"),
        ("http://user:pw@api.github.test/", "without a user name"),
        ("http://api.github.test:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://" + "a" * 2100, "at most 2000 characters"),
        ("", "This field is required"),
    ],
)
def test_it_answers_hostile_test_targets_clearly(alice_client, github_token, target, message):
    test_url = reverse("admin:credentials_credential_test", args=[github_token.pk])
    response = alice_client.post(test_url, {"target": target}, follow=True)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_it_round_trips_the_change_form_unchanged(alice_client, github_token):
    services.update_credential(github_token, allowed_hosts=["api.github.test", "*.github.test"])
    html = alice_client.get(change_url(github_token)).content.decode()
    # Lists are shown one entry per line, so saving the form as shown changes nothing
    assert ">\napi.github.test\n*.github.test</textarea>" in html
    hosts = re.search(r'name="allowed_hosts"[^>]*>\n?(.*?)</textarea>', html, re.S).group(1)
    flows = re.search(r'name="allowed_workflows"[^>]*>\n?(.*?)</textarea>', html, re.S).group(1)
    response = alice_client.post(
        change_url(github_token),
        {"description": "", "secret_token": "", "allowed_hosts": hosts, "allowed_workflows": flows},
    )
    assert response.status_code == 302
    github_token.refresh_from_db()
    assert github_token.allowed_hosts == ["api.github.test", "*.github.test"]
    assert github_token.allowed_workflows == ["sync-issues"]


def test_it_leaves_no_secret_in_the_database_after_admin_edits(alice_client, github_token):
    from tests.credentials.test_canary import dump_database

    response = alice_client.post(
        change_url(github_token),
        {
            "secret_token": "ghp_edited_in_the_console_0000",
            "allowed_hosts": "api.github.test",
            "allowed_workflows": "sync-issues",
        },
    )
    assert response.status_code == 302
    # Not in the admin's history (LogEntry) nor anywhere else but as ciphertext
    dump = dump_database()
    assert "ghp_edited_in_the_console" not in dump and SECRET not in dump
    # The history names the field that changed, not its value
    from django.contrib.admin.models import LogEntry

    assert "Token" in LogEntry.objects.get(object_id=str(github_token.pk)).change_message


def test_it_shows_a_credential_of_an_unregistered_type_read_only(alice_client, key_ring_k1):
    orphan = Credential.objects.create(name="orphan", type="removed_type", allowed_hosts=["x.test"])
    response = alice_client.get(change_url(orphan))
    assert response.status_code == 200
    assert "is not registered: it cannot be edited" in response.content.decode()
    # Saving is refused, not a crash
    assert alice_client.post(change_url(orphan), {"allowed_hosts": "evil.test"}).status_code == 403
    orphan.refresh_from_db()
    assert orphan.allowed_hosts == ["x.test"]
