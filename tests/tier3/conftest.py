"""Fixtures for the tier 3 tests: a Docker engine and an S3 server are up (bin/test's pass)."""

import threading
import time
import uuid
from pathlib import Path

import pytest

from infra.runners.base import ScriptSpec
from infra.runners.docker import docker_client
from tests.tier3 import echo_server


@pytest.fixture
def test_label():
    # xdist workers share the engine: each test finds only what it created.
    return {"appstrate.test": uuid.uuid4().hex}


@pytest.fixture
def outside(settings, test_label):
    """An HTTP server on a network this test created, standing for the outside world; the
    sidecar's egress goes through that network."""
    client = docker_client()
    network = client.networks.create(f"appstrate-test-{uuid.uuid4().hex[:12]}", labels=test_label)
    server = client.containers.run(
        settings.RUN_IMAGE,
        ["python3", "-c", Path(echo_server.__file__).read_text(), "8000"],
        network=network.name,
        labels=test_label,
        detach=True,
    )
    try:
        deadline = time.monotonic() + 20
        while b"echo ready" not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        server.reload()
        settings.RUN_EGRESS_NETWORK = network.name
        yield server.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    finally:
        server.remove(force=True)
        network.remove()


def run_script(adapter, cancel=None, **spec):
    """Run a ScriptSpec made of `spec` through a run adapter (never cancelled by default)."""
    return adapter.run_script(ScriptSpec(**spec), cancel=cancel or threading.Event())
