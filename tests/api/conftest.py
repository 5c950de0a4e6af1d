"""Fixtures for the API tests: a workflow with an input schema, tokens, lenient rate limits."""

from __future__ import annotations

import pytest

from api.tokens import create_token
from tests.api.helpers import make_client
from workflows.models import Workflow

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"count": {"type": "integer", "minimum": 1}, "label": {"type": "string"}},
    "required": ["count"],
    "additionalProperties": False,
}
DEFINITION = {
    "slug": "numbers",
    "name": "Numbers",
    "description": "Waits a moment.",
    "input_schema": INPUT_SCHEMA,
    "policies": {},
    "steps": [{"id": "pause", "type": "wait", "config": {"seconds": 0}, "depends_on": []}],
}


@pytest.fixture(autouse=True)
def _generous_rate_limits(settings):
    # Rate limits have their own tests; elsewhere they must not interfere.
    settings.API_RATE_LIMIT = "100000/m"
    settings.WEBHOOK_RATE_LIMIT = "100000/m"
    settings.LOGIN_RATE_LIMIT = "100000/m"


# At tier 2 a Celery worker that another test started lives for the whole session: runs these
# tests only start must not be executed by it while the test's teardown truncates the tables.
UNCONSUMED_QUEUE = "api-tests-unconsumed"


def store_workflow(definition: dict) -> Workflow:
    """A console workflow stored through the real service."""
    from workflows.services import save_definition

    workflow = Workflow.objects.create(slug=definition["slug"], name=definition["name"])
    save_definition(workflow, definition)
    workflow.save()
    return workflow


@pytest.fixture
def workflow(db):
    """A workflow whose input needs an integer `count`; its runs wait on a queue nobody reads."""
    return store_workflow({**DEFINITION, "policies": {"queue": UNCONSUMED_QUEUE}})


@pytest.fixture
def alice_token(alice):
    """Alice's token with every scope: (ApiToken, text)."""
    return create_token(alice, name="alice all", scopes=["read", "run", "cancel"])


@pytest.fixture
def alice_api(alice_token):
    return make_client(alice_token[1])
