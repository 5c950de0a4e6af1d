"""Tier 2 end to end: a run executes in a real Celery worker process and a real WebSocket client,
connected to daphne serving the ASGI app, sees its step events as they happen."""

import json

import pytest
from django.test import Client
from websockets.sync.client import connect

from runs import services
from runs.models import Run
from workflows.models import Workflow

pytestmark = [pytest.mark.tier2, pytest.mark.django_db(transaction=True)]


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_it_streams_step_events_from_a_worker_to_a_websocket_client(
    celery_worker_process, console_server, demo_workflows, alice
):
    workflow = Workflow.objects.get(slug="demo-long")
    run = services.start_run(workflow, input={"seconds": 3}, triggered_by=alice)
    url = f"ws://127.0.0.1:{console_server.port}/ws/runs/{run.pk}/?after=0"
    headers = {"Cookie": session_cookie(alice), "Origin": console_server.url}
    frames, live_logs = [], []
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        while True:
            frame = json.loads(ws.recv(timeout=60))
            frames.append(frame)
            if frame["type"] == "step.log":
                # It should arrive while the worker is still executing the run.
                live_logs.append(Run.objects.get(pk=run.pk).status)
            if frame["type"].startswith("run.") and frame["type"] not in (
                "run.queued",
                "run.started",
            ):
                break
    types = [f["type"] for f in frames]
    assert types[0] == "run.queued"
    assert "run.started" in types and "step.started" in types
    assert types[-1] == "run.succeeded"
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    texts = "\n".join(f["payload"].get("text", "") for f in frames if f["type"] == "step.log")
    assert "progress 1/3" in texts and "progress 3/3" in texts
    assert "running" in live_logs
    run.refresh_from_db()
    # Executed by the worker, not by the serving process.
    assert run.owner.startswith("celery@")
