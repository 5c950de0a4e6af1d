"""Acceptance 1: real runs whose http and script steps use credentials, against real servers."""

import base64
import hashlib
import os

import pytest

from credentials import services
from runs import services as runs
from runs.models import Run, StepRun
from tests.credentials.conftest import EchoServer
from tests.runs.conftest import make_workflow
from tests.tier2_processes import wait_for
from workflows.definition import DefinitionError

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tok_inject_0123456789abcdef"
# A queue no Celery worker consumes: at tier 2 these runs are executed by this test process only
# (a worker another test started would otherwise race for them).
POLICIES = {"allow_private_network": True, "queue": "credentials-tests"}


def execute(run: Run) -> Run:
    """Execute the run here, unless an executor (a Celery worker a tier 2 test started) claimed
    it first; either way, wait until it is final."""
    runs.execute_run(run.pk, executor_id="creds-test")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final, 60, message="the run to end")
    run.refresh_from_db()
    return run


def run_workflow(slug: str, steps: list[dict]) -> Run:
    workflow = make_workflow({"slug": slug, "steps": steps, "policies": POLICIES})
    return execute(runs.start_run(workflow, input={}))


def http_step(step_id: str, url: str, credential: str, **config) -> dict:
    return {
        "id": step_id,
        "type": "http",
        "config": {"url": url, "credential": credential, **config},
    }


def credential(name, type_, hosts, *, fields=None, secrets=None, workflows=("*",)):
    return services.create_credential(
        name=name,
        type=type_,
        fields=fields or {},
        secrets=secrets or {},
        allowed_hosts=list(hosts),
        allowed_workflows=list(workflows),
    )


@pytest.fixture
def server():
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other_server():
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("type_", "fields", "secrets", "header", "value"),
    [
        (
            "api_key_header",
            {"header_name": "X-Service-Key"},
            {"api_key": TOKEN},
            "X-Service-Key",
            TOKEN,
        ),
        ("bearer_token", {}, {"token": TOKEN}, "Authorization", f"Bearer {TOKEN}"),
        (
            "basic_auth",
            {"username": "robot"},
            {"password": TOKEN},
            "Authorization",
            "Basic " + base64.b64encode(f"robot:{TOKEN}".encode()).decode(),
        ),
    ],
)
def test_it_injects_each_type_into_an_http_step(
    server, key_ring_k1, type_, fields, secrets, header, value
):
    credential("svc", type_, [server.host], fields=fields, secrets=secrets)
    run = run_workflow("inject", [http_step("call", server.url("/echo"), "svc")])
    assert run.status == Run.Status.SUCCEEDED, run.error
    # The server should have received exactly the type's header
    assert server.requests[0]["headers"][header] == value
    # What the run stored (the echoed headers) should have the value masked
    step = StepRun.objects.get(run=run)
    assert step.output["json"]["headers"][header] in ("***", "Bearer ***", "Basic ***")
    assert TOKEN not in str(step.output)


def test_it_sends_nothing_to_a_host_outside_the_allowlist(server, key_ring_k1):
    credential(
        "svc",
        "bearer_token",
        ["api.elsewhere.test", f"127.0.0.1:{server.port + 1}"],
        secrets={"token": TOKEN},
    )
    run = run_workflow("not-allowed", [http_step("call", server.url("/echo"), "svc")])
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert "Authorization" not in server.requests[0]["headers"]


def test_it_drops_the_credential_when_a_redirect_leaves_the_allowed_hosts(
    server, other_server, key_ring_k1
):
    credential(
        "svc",
        "api_key_header",
        [server.host],
        fields={"header_name": "X-Key"},
        secrets={"api_key": TOKEN},
    )
    target = other_server.url("/echo")
    run = run_workflow(
        "redirect-out", [http_step("call", server.url(f"/redirect?to={target}"), "svc")]
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    # The first hop (allowed) carried it; the second (another host) did not
    assert server.requests[0]["headers"]["X-Key"] == TOKEN
    assert "X-Key" not in other_server.requests[0]["headers"]
    assert TOKEN not in str(other_server.requests)


def test_it_keeps_the_credential_on_a_redirect_to_another_allowed_host(
    server, other_server, key_ring_k1
):
    credential("svc", "bearer_token", [server.host, other_server.host], secrets={"token": TOKEN})
    target = other_server.url("/echo")
    run = run_workflow(
        "redirect-in", [http_step("call", server.url(f"/redirect?to={target}"), "svc")]
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert other_server.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_it_gives_script_steps_only_the_fields_they_ask_for(key_ring_k1):
    credential(
        "db",
        "fields",
        [],
        fields={"host": "db.internal"},
        secrets={"password": TOKEN, "other": "other-secret-value"},
    )
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    source = (
        "import hashlib, json, os\n"
        "print(json.dumps({'pw': hashlib.sha256(os.environ['DB_PASSWORD'].encode()).hexdigest(),"
        " 'host': os.environ['DB_HOST'],"
        " 'leaked': [k for k, v in os.environ.items() if v == 'other-secret-value']}))\n"
    )
    bystander = "import json, os\nprint(json.dumps(sorted(os.environ)))\n"
    run = run_workflow(
        "script-env",
        [
            {
                "id": "uses",
                "type": "script",
                "config": {
                    "source": source,
                    "credentials": {"DB_PASSWORD": "db.password", "DB_HOST": "db.host"},
                },
            },
            {"id": "bystander", "type": "script", "config": {"source": bystander}},
        ],
    )
    assert run.status == Run.Status.SUCCEEDED, run.error
    outputs = {s.step_id: s.output for s in run.steps.all()}
    assert outputs["uses"] == {"pw": digest, "host": "db.internal", "leaked": []}
    # A step that did not ask sees none of it, and neither does the executing process
    assert "DB_PASSWORD" not in outputs["bystander"]
    assert "DB_PASSWORD" not in os.environ


def test_it_rejects_missing_and_forbidden_credentials_at_definition_time(key_ring_k1):
    credential(
        "private", "bearer_token", ["x.test"], secrets={"token": TOKEN}, workflows=["someone-else"]
    )
    for name, message in [
        ("ghost", "Credential 'ghost' does not exist."),
        ("private", "Workflow 'defn' may not use credential 'private'."),
    ]:
        with pytest.raises(DefinitionError) as excinfo:
            make_workflow({"slug": "defn", "steps": [http_step("call", "http://x.test/", name)]})
        assert message in str(excinfo.value.errors)


def test_it_fails_the_step_clearly_when_the_credential_is_gone_at_run_time(server, key_ring_k1):
    svc = credential("svc", "bearer_token", [server.host], secrets={"token": TOKEN})
    workflow = make_workflow(
        {
            "slug": "gone",
            "steps": [http_step("call", server.url("/echo"), "svc")],
            "policies": POLICIES,
        }
    )
    svc.delete()
    run = execute(runs.start_run(workflow, input={}))
    step = StepRun.objects.get(run=run)
    assert run.status == Run.Status.FAILED
    assert step.status == StepRun.Status.FAILED
    assert "Credential 'svc' does not exist." in step.error
    assert server.requests == []


def test_it_fails_the_step_when_the_workflow_lost_permission(server, key_ring_k1):
    svc = credential(
        "svc", "bearer_token", [server.host], secrets={"token": TOKEN}, workflows=["revoked"]
    )
    workflow = make_workflow(
        {
            "slug": "revoked",
            "steps": [http_step("call", server.url("/echo"), "svc")],
            "policies": POLICIES,
        }
    )
    services.update_credential(svc, allowed_workflows=["another"])
    run = execute(runs.start_run(workflow, input={}))
    step = StepRun.objects.get(run=run)
    assert "Workflow 'revoked' may not use credential 'svc'." in step.error
    assert server.requests == []


def test_it_drops_the_credential_when_a_redirect_downgrades_https_to_http(
    server, key_ring_k1, tmp_path, monkeypatch
):
    from tests.tls import self_signed_tls

    context, ca_file = self_signed_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # trust the test certificate
    secure = EchoServer(tls_context=context)
    try:
        # "127.0.0.1" allows every port: both servers are allowed hosts
        credential("svc", "bearer_token", ["127.0.0.1"], secrets={"token": TOKEN})
        plain = server.url("/echo")
        run = run_workflow(
            "downgrade", [http_step("call", secure.url(f"/redirect?to={plain}"), "svc")]
        )
        assert run.status == Run.Status.SUCCEEDED, run.error
        # Sent over TLS, never in clear text after the server redirected to http://
        assert secure.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert "Authorization" not in server.requests[0]["headers"]
    finally:
        secure.stop()


def test_it_fails_the_step_naming_the_key_when_it_left_the_ring(server, key_ring_k1, settings):
    from tests.credentials.conftest import K2

    credential("svc", "bearer_token", [server.host], secrets={"token": TOKEN})
    settings.CREDENTIALS_KEYS = K2  # k1 removed before the values were rotated
    run = run_workflow("lost-key", [http_step("call", server.url("/echo"), "svc")])
    step = StepRun.objects.get(run=run)
    assert run.status == Run.Status.FAILED
    assert "credential 'svc' field 'token': encrypted with key 'k1'" in step.error
    assert server.requests == []
