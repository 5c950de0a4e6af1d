"""A `script` step at tier 3, through the engine: container, sidecar, credential, masking."""

import json

import pytest

from credentials.services import create_credential
from infra.registry import get_run_adapter
from infra.runners.docker import DockerRunAdapter
from runs import services
from runs.models import Run, RunEvent
from tests.runs.conftest import make_workflow

pytestmark = [pytest.mark.tier3, pytest.mark.django_db(transaction=True)]

SECRET = "e2e-sidecar-secret-7f3a"
CALLS_THE_API = """
import json, os, sys, urllib.request
host = json.load(sys.stdin)["host"]
with urllib.request.urlopen("http://%s:8000/items" % host, timeout=10) as response:
    seen = json.load(response)["headers"]
print("called the api", flush=True)
print(json.dumps({"authorization": seen.get("Authorization"), "env_token": os.environ["API_TOKEN"]}))
"""


def test_it_runs_on_the_docker_adapter_at_tier_3():
    assert isinstance(get_run_adapter(), DockerRunAdapter)


def test_it_runs_a_script_step_whose_requests_carry_the_credential(outside):
    create_credential(
        name="outside_api",
        type="bearer_token",
        secrets={"token": SECRET},
        allowed_hosts=[f"{outside}:8000"],
        allowed_workflows=["sidecar-e2e"],
    )
    workflow = make_workflow(
        {
            "slug": "sidecar-e2e",
            "policies": {"allow_private_network": True},
            "steps": [
                {
                    "id": "call",
                    "type": "script",
                    "config": {
                        "language": "python",
                        "source": CALLS_THE_API,
                        "input": {"host": outside},
                        "credentials": {"API_TOKEN": "outside_api.token"},
                    },
                }
            ],
        }
    )
    run = services.start_run(workflow, input={})
    services.execute_run(run.pk, executor_id="tier3-test")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    step = run.steps.get(step_id="call")
    # The server saw the bearer token (masked when stored); the script never had it.
    assert step.output == {"authorization": "Bearer ***", "env_token": "injected-by-sidecar"}
    assert "called the api" in step.logs
    stored = json.dumps(list(RunEvent.objects.filter(run=run).values_list("payload", flat=True)))
    assert SECRET not in stored + step.logs + json.dumps(step.output)
