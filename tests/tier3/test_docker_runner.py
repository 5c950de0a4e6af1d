"""RUN_ADAPTER=docker: script steps in containers, reachable outside only through the sidecar."""

import json
import threading
import time
import uuid

import pytest
from django.conf import settings

from infra.runners.base import ScriptSpec
from infra.runners.docker import (
    CREATED_LABEL,
    LABEL,
    SECRET_PLACEHOLDER,
    DockerRunAdapter,
    docker_client,
    remove_stale_resources,
)
from tests.tier3.conftest import run_script
from tests.tier3.creds import bearer

pytestmark = pytest.mark.tier3

SECRET = "tier3-secret-token-4b1d"


@pytest.fixture
def adapter(test_label):
    adapter = DockerRunAdapter(labels=test_label)
    yield adapter
    # It should leave no container and no network behind, whatever the test did.
    filters = {"label": "appstrate.test=" + test_label["appstrate.test"]}
    assert adapter.client.containers.list(all=True, filters=filters) == []
    assert adapter.client.networks.list(filters=filters) == []


def test_it_runs_a_python_script_with_its_input_and_environment(adapter):
    result = run_script(
        adapter,
        language="python",
        source="import os, sys\nprint(sys.stdin.read().upper(), os.environ['GREETING'])\n"
        "print('to stderr', file=sys.stderr)",
        stdin="hello",
        env={"GREETING": "from env"},
    )
    assert result.exit_code == 0
    assert result.stdout == "HELLO from env\n"
    assert result.stderr == "to stderr\n"


def test_it_runs_a_shell_script_and_reports_its_exit_code(adapter):
    result = run_script(adapter, language="shell", source='echo "as $(id -un)"; exit 3')
    assert result.exit_code == 3
    # It should run as the image's unprivileged user, never root.
    assert result.stdout == "as runner\n"


def test_it_kills_the_container_on_timeout(adapter):
    started = time.monotonic()
    result = run_script(adapter, language="shell", source="sleep 120", timeout_seconds=2)
    assert result.timed_out and not result.cancelled
    assert result.exit_code is None
    assert time.monotonic() - started < 30


def test_it_kills_the_container_on_cancel(adapter):
    cancel = threading.Event()
    started = time.monotonic()

    def log(line):
        # Cancel once the script is surely running inside its container.
        if line == "started":
            threading.Timer(0.5, cancel.set).start()

    result = adapter.run_script(
        ScriptSpec(
            language="python",
            source="import time\nprint('started', flush=True)\ntime.sleep(120)",
            timeout_seconds=120,
        ),
        cancel=cancel,
        log=log,
    )
    assert result.cancelled and not result.timed_out
    assert result.exit_code is None
    assert result.stdout == "started\n"
    assert time.monotonic() - started < 60


def test_it_enforces_the_memory_limit(adapter):
    result = run_script(
        adapter,
        language="python",
        source="blocks = [bytearray(16 * 1024 * 1024) for _ in range(32)]\nprint('survived')",
        memory_limit_mb=64,
    )
    assert result.exit_code != 0
    assert "survived" not in result.stdout
    assert "more than 64 MB" in result.stderr


PROBE_SCRIPT = """
import json, os, socket, sys, urllib.request
host = sys.stdin.read().strip()
report = {}
try:
    socket.create_connection((host, 8000), timeout=3).close()
    report["direct"] = "connected"
except OSError as exc:
    report["direct"] = "blocked: %s" % exc
with urllib.request.urlopen("http://%s:8000/hello" % host, timeout=10) as response:
    report["seen_by_server"] = json.load(response)
report["env"] = dict(os.environ)
with open("/proc/1/environ", "rb") as handle:
    report["pid1_environ"] = handle.read().decode(errors="replace")
print(json.dumps(report))
"""


def test_it_reaches_the_outside_only_through_the_sidecar(adapter, outside):
    cred = bearer("outside_api", SECRET, [f"{outside}:8000"])
    result = run_script(
        adapter,
        language="python",
        source=PROBE_SCRIPT,
        stdin=outside,
        env={"API_TOKEN": SECRET, "PLAIN": "kept"},
        credentials=(cred,),
        allow_private_network=True,  # the test network is a private address range
        timeout_seconds=60,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # It should have no route of its own to the server...
    assert report["direct"].startswith("blocked")
    # ...but the sidecar forwards, adding the credential for the allowed host.
    assert report["seen_by_server"]["headers"]["Authorization"] == f"Bearer {SECRET}"
    # And the secret is nowhere in the container's environment.
    assert report["env"]["API_TOKEN"] == SECRET_PLACEHOLDER
    assert report["env"]["PLAIN"] == "kept"
    assert SECRET not in json.dumps(report["env"])
    assert SECRET not in report["pid1_environ"]


def test_it_adds_no_credential_for_a_host_it_does_not_allow(adapter, outside):
    cred = bearer("elsewhere", SECRET, ["api.example.com"])
    result = run_script(
        adapter,
        language="python",
        source="import sys, urllib.request\n"
        "print(urllib.request.urlopen('http://%s:8000/' % sys.stdin.read(), timeout=10).read().decode())",
        stdin=outside,
        credentials=(cred,),
        allow_private_network=True,
    )
    assert result.exit_code == 0, result.stderr
    assert "Authorization" not in json.loads(result.stdout)["headers"]


def test_its_sidecar_refuses_private_addresses_by_default(adapter, outside):
    result = run_script(
        adapter,
        language="python",
        source="import sys, urllib.request, urllib.error\n"
        "try:\n    urllib.request.urlopen('http://%s:8000/' % sys.stdin.read(), timeout=10)\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code, exc.read().decode())",
        stdin=outside,
    )
    assert result.stdout.startswith("403 sidecar refused")


def test_it_streams_each_line_to_the_log_as_it_arrives(adapter):
    lines = []
    arrival = {}

    def log(line):
        lines.append(line)
        arrival.setdefault(line, time.monotonic())

    result = adapter.run_script(
        ScriptSpec(
            language="python",
            source="import sys, time\nprint('first')\ntime.sleep(1.5)\n"
            "print('second', file=sys.stderr)",
        ),
        cancel=threading.Event(),
        log=log,
    )
    assert result.exit_code == 0
    assert lines == ["first", "second"]
    # It should deliver "first" while the script still runs, not all at the end.
    assert arrival["second"] - arrival["first"] > 1.0


def test_it_removes_what_a_dead_call_left_behind(test_label):
    client = docker_client()
    now = int(time.time())

    def leave(age_seconds):
        labels = {**test_label, LABEL: uuid.uuid4().hex, CREATED_LABEL: str(now - age_seconds)}
        network = client.networks.create(f"appstrate-left-{uuid.uuid4().hex[:12]}", labels=labels)
        container = client.containers.create(settings.RUN_IMAGE, ["true"], labels=labels)
        return network, container

    leave(7200)
    new_network, new_container = leave(10)
    try:
        assert remove_stale_resources(client, older_than_seconds=3600) >= 2
        filters = {"label": "appstrate.test=" + test_label["appstrate.test"]}
        # Only what is older than any step may live is removed.
        assert [c.id for c in client.containers.list(all=True, filters=filters)] == [
            new_container.id
        ]
        assert [n.id for n in client.networks.list(filters=filters)] == [new_network.id]
    finally:
        new_container.remove(force=True)
        new_network.remove()
