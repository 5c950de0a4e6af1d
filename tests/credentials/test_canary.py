"""Acceptance 2: a run whose steps print, return, raise and log a secret leaks it nowhere.

Afterwards the secret (raw, base64, URL-encoded) must not appear in any database table, the
logs the process wrote, the API responses, the run events or the console pages.
"""

import io
import logging

import pytest
from django.db import connection
from django.urls import reverse

from api.tokens import create_token
from credentials import masking, services
from runs import services as runs
from runs.models import Run, RunEvent, StepRun
from tests.api.helpers import make_client
from tests.credentials.conftest import EchoServer
from tests.runs.conftest import make_workflow
from tests.tier2_processes import wait_for
from workflows.nodes.base import StepContext
from workflows.nodes.python import register_function

pytestmark = pytest.mark.django_db(transaction=True)

# Characters that base64 and URL-encoding both change, so every form differs from the raw one.
CANARY = "cAnAry/s3cr3t+v@lue=42&x~QZ"
FORMS = masking.secret_forms([CANARY])

PRINTS = """
import base64, os, sys, urllib.parse
token = os.environ["TOKEN"]
print("raw", token)
print("b64", base64.b64encode(token.encode()).decode())
print("url", urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token))
print("to stderr", token, file=sys.stderr)
"""
RETURNS = """
import base64, json, os
token = os.environ["TOKEN"]
print(json.dumps({"token": token, "b64": base64.urlsafe_b64encode(token.encode()).decode(),
                  "nested": [{"again": "Bearer " + token}]}))
"""
RAISES = """
import os
raise RuntimeError("upstream rejected " + os.environ["TOKEN"])
"""
LOGS = """
import logging, os
logging.basicConfig(level=logging.INFO)
logging.getLogger("script").warning("using token %s", os.environ["TOKEN"])
print("{}")
"""


def project_code(ctx: StepContext) -> dict:
    """Project code that resolves the credential itself, then logs and returns it."""
    token = services.resolve("canary", workflow_slug="canary").values["token"]
    logging.getLogger("project.code").warning("project code saw %s", token)
    ctx.log(f"ctx.log saw {token}")
    return {"token": token}


register_function(project_code, "credtest.project_code")


@pytest.fixture
def server():
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def all_logs():
    """Everything logged at any level by any logger, including ones that don't propagate."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name, obj in logging.Logger.manager.loggerDict.items()
        if isinstance(obj, logging.Logger) and not obj.propagate
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


def script(step_id: str, source: str) -> dict:
    return {
        "id": step_id,
        "type": "script",
        "config": {"source": source, "credentials": {"TOKEN": "canary.token"}},
    }


def dump_database() -> str:
    """The text of every row of every table."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.append(
                    f"{table}: "
                    + " | ".join(
                        bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                        for v in row
                    )
                )
    return "\n".join(chunks)


def assert_clean(where: str, text: str) -> None:
    for form in FORMS:
        assert form not in text, f"the canary ({form!r}) leaked into {where}"


def canary_steps(server, *, project_code: bool) -> list[dict]:
    steps = [
        script("prints", PRINTS),
        script("returns", RETURNS),
        script("logs", LOGS),
        {
            "id": "calls",
            "type": "http",
            "config": {"url": server.url("/echo"), "credential": "canary"},
        },
    ]
    if project_code:  # registered in this process only, so not in a Celery worker's
        steps.append(
            {"id": "project", "type": "python", "config": {"function": "credtest.project_code"}}
        )
    # Last, because a failed step cancels the steps still running
    raises = script("raises", RAISES)
    raises["depends_on"] = [step["id"] for step in steps]
    return [*steps, raises]


def start_canary_run(server, *, project_code: bool, queue: str = "appstrate") -> Run:
    services.create_credential(
        name="canary",
        type="bearer_token",
        secrets={"token": CANARY},
        allowed_hosts=[server.host],
        allowed_workflows=["canary"],
    )
    masking.forget_all()  # the engine must find the secret by resolving it, not by luck
    workflow = make_workflow(
        {
            "slug": "canary",
            # The in-process test names a queue no Celery worker consumes.
            "policies": {"allow_private_network": True, "queue": queue},
            "steps": canary_steps(server, project_code=project_code),
        }
    )
    return runs.start_run(workflow, input={})


def assert_steps_handled_the_secret(run: Run, server) -> dict:
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run)}
    assert run.status == Run.Status.FAILED, run.error
    assert steps["raises"].status == StepRun.Status.FAILED
    assert "upstream rejected ***" in steps["raises"].error
    assert "raw ***" in steps["prints"].logs + str(steps["prints"].output)
    assert steps["returns"].output["token"] == "***"
    assert steps["calls"].output["json"]["headers"]["Authorization"] == "Bearer ***"
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {CANARY}"
    return steps


def assert_leaks_nowhere(run: Run, alice, alice_client, logs: str) -> None:
    # The database, every table, and the run events as stored
    assert_clean("the database", dump_database())
    assert_clean("the run events", str(list(RunEvent.objects.filter(run=run).values())))
    assert_clean("the logs", logs)
    # The API
    api = make_client(create_token(alice, name="canary", scopes=["read"])[1])
    for url in (f"/api/runs/{run.pk}", f"/api/runs/{run.pk}/events"):
        response = api.get(url)
        assert response.status_code == 200, response.content[:500]
        assert_clean(url, response.content.decode())
    # The console
    credential = services.Credential.objects.get(name="canary")
    for url in (
        reverse("admin:runs_run_change", args=[run.pk]),
        reverse("admin:runs_run_state", args=[run.pk]),
        reverse("admin:runs_run_changelist"),
        reverse("admin:credentials_credential_changelist"),
        reverse("admin:credentials_credential_change", args=[credential.pk]),
    ):
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert_clean(url, response.content.decode())


def test_it_never_leaks_the_canary(server, key_ring_k1, alice, alice_client, all_logs, capfd):
    run = start_canary_run(server, project_code=True, queue="credentials-tests")
    runs.execute_run(run.pk, executor_id="canary-test")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final, 60, message="the canary run to end")
    run.refresh_from_db()
    steps = assert_steps_handled_the_secret(run, server)
    assert steps["project"].output == {"token": "***"}
    assert "project code saw ***" in all_logs.getvalue()
    captured = capfd.readouterr()
    assert_leaks_nowhere(
        run, alice, alice_client, all_logs.getvalue() + captured.out + captured.err
    )


@pytest.mark.tier2
def test_it_never_leaks_the_canary_from_a_celery_worker(
    server, celery_worker_process, alice, alice_client, all_logs
):
    # The worker was started with this process's key ring (the test data dir's dev key).
    run = start_canary_run(server, project_code=False)
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final, 60, message="the canary run to end")
    run.refresh_from_db()
    assert_steps_handled_the_secret(run, server)
    assert_leaks_nowhere(
        run, alice, alice_client, all_logs.getvalue() + celery_worker_process.output()
    )
