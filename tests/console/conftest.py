import hashlib
import json

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F

from runs.models import Run, RunEvent
from workflows.models import Workflow, WorkflowVersion

PIPELINE = {
    "slug": "pipeline",
    "name": "Pipeline",
    "description": "Fetch, transform twice, then publish.",
    "input_schema": {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "default": 5, "minimum": 1},
            "label": {"type": "string"},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
            "dry_run": {"type": "boolean", "default": False},
        },
        "required": ["label"],
    },
    "policies": {"timeout_seconds": 3600, "max_step_executions": 200, "concurrency": None},
    "steps": [
        {
            "id": "fetch",
            "type": "http",
            "config": {"url": "http://127.0.0.1/"},
            "depends_on": [],
            "policies": {"retries": {"max_attempts": 3}, "timeout_seconds": 30},
        },
        {
            "id": "double",
            "type": "python",
            "config": {"function": "demo.double"},
            "depends_on": ["fetch"],
            "policies": {"retries": {"max_attempts": 1}},
        },
        {
            "id": "square",
            "type": "python",
            "config": {"function": "demo.square"},
            "depends_on": ["fetch"],
            "policies": {},
        },
        {
            "id": "publish",
            "type": "wait",
            "config": {"seconds": 1},
            "depends_on": ["double", "square"],
            "policies": {"timeout_seconds": 5},
        },
    ],
}


def make_workflow(definition=PIPELINE):
    workflow = Workflow.objects.create(
        slug=definition["slug"], name=definition["name"], definition=definition
    )
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, content_hash=digest, definition=definition
    )
    workflow.current_version = version
    workflow.save(update_fields=["current_version"])
    return workflow


@pytest.fixture
def pipeline(db):
    return make_workflow()


@pytest.fixture
def pipeline_run(pipeline):
    return Run.objects.create(
        workflow=pipeline, version=pipeline.current_version, input={"label": "x"}
    )


def record_event(run, type_, payload=None, *, publish=True):
    """Append an event the way the engine does (next seq, then publish after commit)."""
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(last_event_seq=F("last_event_seq") + 1)
        seq = Run.objects.values_list("last_event_seq", flat=True).get(pk=run.pk)
        event = RunEvent.objects.create(run=run, seq=seq, type=type_, payload=payload or {})
    if publish:
        publish_event(event)
    return event


def publish_event(event):
    message = {
        "type": "run.event",
        "run_id": event.run_id,
        "seq": event.seq,
        "event": event.type,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(f"run-{event.run_id}", message)
    async_to_sync(layer.group_send)("runs", message)
