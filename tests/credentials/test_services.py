import base64

import pytest

from credentials import services
from credentials.exceptions import CredentialError
from credentials.models import Credential, SecretValue

pytestmark = pytest.mark.django_db


def make(name, type_, *, fields=None, secrets=None, hosts=("api.example.test",), workflows=("*",)):
    return services.create_credential(
        name=name,
        type=type_,
        fields=fields or {},
        secrets=secrets or {},
        allowed_hosts=list(hosts),
        allowed_workflows=list(workflows),
    )


def test_it_injects_an_api_key_in_the_configured_header(key_ring_k1):
    make(
        "weather",
        "api_key_header",
        fields={"header_name": "X-Weather-Key"},
        secrets={"api_key": "wk_0123456789"},
    )
    resolved = services.resolve("weather", workflow_slug="any")
    headers = resolved.apply_to_headers({"Accept": "application/json"})
    assert headers == {"Accept": "application/json", "X-Weather-Key": "wk_0123456789"}


def test_it_defaults_the_api_key_header_name(key_ring_k1):
    make("weather", "api_key_header", secrets={"api_key": "wk_0123456789"})
    resolved = services.resolve("weather", workflow_slug="any")
    assert resolved.apply_to_headers({}) == {"X-API-Key": "wk_0123456789"}


def test_it_injects_a_bearer_token(github_token):
    resolved = services.resolve("github", workflow_slug="sync-issues")
    assert resolved.apply_to_headers({}) == {"Authorization": "Bearer ghp_canary_0123456789abcdef"}
    assert resolved.secrets == {"ghp_canary_0123456789abcdef"}


def test_it_injects_basic_auth_and_masks_the_header_value(key_ring_k1):
    make("legacy", "basic_auth", fields={"username": "ops"}, secrets={"password": "pa55word!"})
    resolved = services.resolve("legacy", workflow_slug="x")
    token = base64.b64encode(b"ops:pa55word!").decode()
    assert resolved.apply_to_headers({}) == {"Authorization": f"Basic {token}"}
    # It should mask the combined forms that travel in the header, not only the password
    assert {"pa55word!", "ops:pa55word!", token} <= resolved.secrets
    assert "ops" not in resolved.secrets


def test_it_gives_generic_fields_to_script_environments(key_ring_k1):
    make(
        "db",
        "fields",
        fields={"host": "db.internal"},
        secrets={"password": "hunter2-hunter2", "api_token": "tok-998877"},
    )
    resolved = services.resolve("db", workflow_slug="etl")
    assert resolved.env(["password", "host"]) == {
        "password": "hunter2-hunter2",
        "host": "db.internal",
    }
    assert resolved.apply_to_headers({"A": "b"}) == {"A": "b"}
    assert resolved.secrets == {"hunter2-hunter2", "tok-998877"}
    with pytest.raises(CredentialError, match="'db' has no field 'nope'"):
        resolved.env(["nope"])


def test_it_checks_the_host_allowlist(key_ring_k1):
    make(
        "w",
        "bearer_token",
        secrets={"token": "tok-12345678"},
        hosts=["api.example.test", "*.cdn.test"],
    )
    resolved = services.resolve("w", workflow_slug="x")
    assert resolved.allows_host("api.example.test")
    assert resolved.allows_host("eu.cdn.test:443")
    assert not resolved.allows_host("evil.test")
    assert not resolved.allows_host("api.example.test.evil.test")


def test_it_stores_secrets_encrypted_and_never_in_plain_columns(github_token):
    stored = SecretValue.objects.get(credential=github_token)
    assert stored.key_id == "k1"
    assert "ghp_canary" not in stored.ciphertext
    assert "ghp_canary" not in str(Credential.objects.values().get())


def test_it_reports_missing_and_forbidden_references(github_token):
    assert services.check_reference("github", "sync-issues") is None
    assert services.check_reference("nope", "sync-issues") == "Credential 'nope' does not exist."
    assert "may not use credential 'github'" in services.check_reference("github", "other-flow")
    with pytest.raises(CredentialError, match="does not exist"):
        services.resolve("nope", workflow_slug="sync-issues")
    with pytest.raises(CredentialError, match="Workflow 'other-flow' may not use"):
        services.resolve("github", workflow_slug="other-flow")


def test_it_keeps_a_secret_when_an_update_leaves_it_blank(github_token):
    services.update_credential(github_token, secrets={"token": ""}, allowed_hosts=["x.test"])
    resolved = services.resolve("github", workflow_slug="sync-issues")
    assert resolved.values["token"] == "ghp_canary_0123456789abcdef"
    assert resolved.allowed_hosts == ("x.test",)
    services.update_credential(github_token, secrets={"token": "ghp_new_value_000000"})
    assert (
        services.resolve("github", workflow_slug="sync-issues").values["token"]
        == "ghp_new_value_000000"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "bearer_token", "secrets": {}}, "token"),
        (
            {"type": "bearer_token", "secrets": {"token": "t-123456"}, "fields": {"extra": "x"}},
            "extra",
        ),
        (
            {
                "type": "api_key_header",
                "secrets": {"api_key": "k-123456"},
                "fields": {"header_name": "Bad Header"},
            },
            "header_name",
        ),
        (
            {
                "type": "api_key_header",
                "secrets": {"api_key": "k-123456"},
                "fields": {"header_name": "Host"},
            },
            "header_name",
        ),
        (
            {
                "type": "bearer_token",
                "secrets": {"token": "t-123456"},
                "allowed_hosts": ["http://x.test/"],
            },
            "allowed_hosts",
        ),
        (
            {
                "type": "bearer_token",
                "secrets": {"token": "t-123456"},
                "allowed_workflows": ["not a slug"],
            },
            "allowed_workflows",
        ),
        ({"type": "fields", "secrets": {"bad name": "v-123456"}}, "fields"),
        ({"type": "fields", "fields": {"a": "1"}, "secrets": {"a": "v-123456"}}, "fields"),
    ],
)
def test_it_rejects_invalid_values_and_saves_nothing(key_ring_k1, kwargs, field):
    with pytest.raises(services.InvalidCredential) as excinfo:
        services.create_credential(name="c", **kwargs)
    assert field in excinfo.value.errors
    assert not Credential.objects.exists()
    assert not SecretValue.objects.exists()
    # The message should never quote a secret value
    for value in kwargs.get("secrets", {}).values():
        assert value not in str(excinfo.value)


def test_it_refuses_an_unknown_type_and_a_duplicate_name(github_token):
    with pytest.raises(CredentialError, match="not registered"):
        services.create_credential(name="x", type="nope")
    with pytest.raises(services.InvalidCredential, match="exists"):
        services.create_credential(
            name="github", type="bearer_token", secrets={"token": "abcdefgh"}
        )


def test_it_lists_workflows_whose_current_version_uses_it(github_token):
    from workflows.models import Workflow, WorkflowVersion

    def workflow(slug, steps):
        wf = Workflow.objects.create(slug=slug, name=slug)
        wf.current_version = WorkflowVersion.objects.create(
            workflow=wf, number=1, content_hash=slug, definition={"slug": slug, "steps": steps}
        )
        wf.save()
        return wf

    workflow("via-http", [{"id": "a", "type": "http", "config": {"credential": "github"}}])
    workflow(
        "via-script",
        [{"id": "a", "type": "script", "config": {"credentials": {"T": "github.token"}}}],
    )
    workflow("unrelated", [{"id": "a", "type": "http", "config": {"credential": "other"}}])
    assert [w.slug for w in services.workflows_using("github")] == ["via-http", "via-script"]


def test_it_fingerprints_without_revealing_short_values(settings):
    assert services.fingerprint("ghp_canary_0123456789abcdef") == "…cdef"
    short = services.fingerprint("pa55word!")
    assert short.startswith("#") and "word" not in short


def test_it_refuses_secrets_too_short_to_mask(key_ring_k1):
    with pytest.raises(services.InvalidCredential, match="at least 4 characters"):
        services.create_credential(name="short", type="bearer_token", secrets={"token": "abc"})
    assert not Credential.objects.exists()


# Built here so that the report's source excerpts of this test never contain the value itself.
DEBUG_PAGE_SECRET = "-".join(["tok", "in", "a", "debug", "page", "42"])


def test_it_keeps_decrypted_values_out_of_error_reports(key_ring_k1, rf):
    import sys

    from django.views.debug import ExceptionReporter

    from credentials.types import BearerToken, register

    @register
    class Broken(BearerToken):
        name = "broken_for_test"
        label = "Broken (test)"

        def derived_secrets(self, values):
            raise RuntimeError("a bug in a project's credential type")

    make("broken", "broken_for_test", secrets={"token": DEBUG_PAGE_SECRET})
    try:
        services.resolve("broken", workflow_slug="x")
    except RuntimeError:
        reporter = ExceptionReporter(rf.get("/"), *sys.exc_info())
        # The DEBUG page and the mailed report list locals; the decrypted ones must be hidden
        assert DEBUG_PAGE_SECRET not in reporter.get_traceback_html()
        assert DEBUG_PAGE_SECRET not in reporter.get_traceback_text()
    else:
        pytest.fail("the broken type should have raised")
    finally:
        from credentials import types

        types._registry.pop("broken_for_test")  # registered for this test only
