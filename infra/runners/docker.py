"""The tier 3 run adapter: each `script` step runs in its own container, with no way out except
a credential sidecar.

Per call: an internal Docker network (no route out), a sidecar proxy container on that network
and on the egress network (settings.RUN_EGRESS_NETWORK), and the script container on the
internal network only, with HTTP(S)_PROXY pointing at the sidecar, a memory limit, no
capabilities, and no secret in its environment. Timeout and cancel kill the container; all
three are removed afterwards, whatever happened.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import requests
from django.conf import settings
from docker.errors import DockerException, NotFound
from docker.models.containers import Container
from docker.models.networks import Network

import credentials.hosts
from infra.runners import sidecar
from infra.runners.base import RunAdapter, ScriptResult, ScriptSpec

logger = logging.getLogger("infra")

LABEL = "appstrate.run-call"  # every container and network of one call carries its id
CREATED_LABEL = "appstrate.created"  # Unix time, to find what a dead worker left behind
SWEEP_EVERY_SECONDS = 600.0
RUNNER_UID = 10001  # the `runner` user of infra/images/run.Dockerfile
SIDECAR_PORT = 3128
SIDECAR_READY_SECONDS = 20.0
OUTPUT_LIMIT_BYTES = 1024 * 1024  # per stream; the rest is cut with a note
SECRET_PLACEHOLDER = "injected-by-sidecar"
COMMANDS = {
    # -u: unbuffered, so progress lines reach the live log as they are printed.
    "python": "exec python3 -u /tmp/appstrate/script < /tmp/appstrate/stdin",
    "shell": "exec /bin/sh /tmp/appstrate/script < /tmp/appstrate/stdin",
}


class DockerRunError(RuntimeError):
    """The engine refused or failed to set up the step's containers."""


def docker_client(**kwargs: Any) -> docker.DockerClient:
    if settings.DOCKER_HOST:
        return docker.DockerClient(base_url=settings.DOCKER_HOST, **kwargs)
    return docker.from_env(**kwargs)


class DockerRunAdapter(RunAdapter):
    def __init__(
        self, client: docker.DockerClient | None = None, *, labels: dict[str, str] | None = None
    ) -> None:
        self._client = client
        # Put on every container and network it creates, e.g. to find leftovers of one worker.
        self._labels = dict(labels or {})
        self._last_sweep = 0.0
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = docker_client()
            return self._client

    def run_script(
        self,
        spec: ScriptSpec,
        *,
        cancel: threading.Event,
        log: Callable[[str], None] | None = None,
    ) -> ScriptResult:
        if spec.language not in COMMANDS:
            raise DockerRunError(f"Unknown script language {spec.language!r}.")
        self._sweep_now_and_then()
        call_id = uuid.uuid4().hex[:16]
        labels = {**self._labels, LABEL: call_id, CREATED_LABEL: str(int(time.time()))}
        created: list[Container | Network] = []
        try:
            network = self.client.networks.create(
                f"appstrate-run-{call_id}", driver="bridge", internal=True, labels=labels
            )
            created.append(network)
            sidecar_container, proxy = self._start_sidecar(spec, network, labels, created)
            # Made while the sidecar's Python boots; started only once the sidecar listens.
            container = self._create_script_container(spec, network, proxy, labels)
            created.append(container)
            _wait_until_ready(sidecar_container)
            return self._run_to_end(container, spec, cancel, log)
        except DockerException as exc:
            raise DockerRunError(f"Docker could not run the script: {exc}") from exc
        finally:
            _remove(reversed(created))

    def _sweep_now_and_then(self) -> None:
        if time.monotonic() - self._last_sweep < SWEEP_EVERY_SECONDS:
            return
        self._last_sweep = time.monotonic()
        # No step outlives its run, and no run outlives RUN_MAX_TIMEOUT_SECONDS.
        limit = settings.RUN_MAX_TIMEOUT_SECONDS + SWEEP_EVERY_SECONDS
        try:
            removed = remove_stale_resources(self.client, older_than_seconds=limit)
        except DockerException:
            logger.exception("Sweeping stale run containers failed")
            return
        if removed:
            logger.warning("Removed %d containers/networks left by a dead run call", removed)

    def _start_sidecar(
        self, spec: ScriptSpec, network: Network, labels: dict, created: list
    ) -> tuple[Container, str]:
        """Start the proxy; return it and its URL on the internal network."""
        container = self.client.containers.create(
            settings.RUN_IMAGE,
            command=["python3", "/opt/sidecar/sidecar.py", "/opt/sidecar/config.json"],
            network=settings.RUN_EGRESS_NETWORK,
            labels=labels,
            mem_limit="128m",
            pids_limit=128,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user=str(RUNNER_UID),
        )
        created.append(container)
        container.put_archive("/opt", _tar(_sidecar_files(spec, network), prefix="sidecar"))
        network.connect(container)
        container.start()
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        return container, f"http://{address}:{SIDECAR_PORT}"

    def _create_script_container(
        self, spec: ScriptSpec, network: Network, proxy: str, labels: dict
    ) -> Container:
        environment = _without_secrets(spec.env, spec.credentials)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environment[name] = proxy
        environment["LANG"] = "C.UTF-8"  # as the process adapter gives its scripts
        container = self.client.containers.create(
            settings.RUN_IMAGE,
            command=["/bin/sh", "-c", COMMANDS[spec.language]],
            environment=environment,
            network=network.name,
            labels=labels,
            mem_limit=f"{spec.memory_limit_mb}m",
            memswap_limit=f"{spec.memory_limit_mb}m",  # no swap: the limit is the limit
            pids_limit=256,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user=str(RUNNER_UID),
            init=True,
        )
        files = {"script": spec.source.encode(), "stdin": spec.stdin.encode()}
        container.put_archive("/tmp", _tar(files, prefix="appstrate"))
        return container

    def _run_to_end(
        self,
        container: Container,
        spec: ScriptSpec,
        cancel: threading.Event,
        log: Callable[[str], None] | None,
    ) -> ScriptResult:
        container.start()
        follower = _follow_logs(container, log) if log is not None else None
        deadline = time.monotonic() + spec.timeout_seconds
        exit_code: int | None = None
        timed_out = cancelled = False
        while True:
            if cancel.is_set():
                cancelled = True
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                exit_code = container.wait(timeout=min(0.25, remaining))["StatusCode"]
                break
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                continue
        if exit_code is None:
            _kill(container)
        if follower is not None:
            follower.join(timeout=5)
        stdout = _read_logs(container, stdout=True)
        stderr = _read_logs(container, stdout=False)
        container.reload()
        if container.attrs["State"].get("OOMKilled"):
            stderr += f"\nKilled: the script used more than {spec.memory_limit_mb} MB of memory."
        return ScriptResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            cancelled=cancelled,
        )


def _wait_until_ready(sidecar_container: Container) -> None:
    deadline = time.monotonic() + SIDECAR_READY_SECONDS
    while b"sidecar ready" not in sidecar_container.logs(stdout=True, stderr=False):
        sidecar_container.reload()
        if sidecar_container.status == "exited" or time.monotonic() > deadline:
            raise DockerRunError(
                "The credential sidecar did not start: "
                + sidecar_container.logs().decode(errors="replace")[-500:]
            )
        time.sleep(0.05)


def remove_stale_resources(client: docker.DockerClient, *, older_than_seconds: float) -> int:
    """Remove the containers and networks of run calls older than `older_than_seconds`: what a
    worker that died mid-step left behind. Returns how many it removed."""
    cutoff = time.time() - older_than_seconds

    def stale(resource: Container | Network) -> bool:
        created = (resource.attrs.get("Labels") or resource.attrs["Config"]["Labels"] or {}).get(
            CREATED_LABEL, ""
        )
        return created.isdigit() and int(created) < cutoff

    containers = [c for c in client.containers.list(all=True, filters={"label": LABEL}) if stale(c)]
    networks = [n for n in client.networks.list(filters={"label": LABEL}) if stale(n)]
    _remove(containers + networks)
    return len(containers) + len(networks)


def _follow_logs(container: Container, log: Callable[[str], None]) -> threading.Thread:
    """Send each line of output to `log` as it arrives, until the container stops."""

    def follow() -> None:
        pending = b""
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log(line.decode("utf-8", errors="replace"))
            if pending:
                log(pending.decode("utf-8", errors="replace"))
        except Exception:  # a failing log sink or a vanished container must not fail the step
            logger.debug("Log follower of %s stopped", container.id[:12], exc_info=True)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def _without_secrets(env: dict[str, str], creds: tuple[Any, ...]) -> dict[str, str]:
    """`env` with every value that holds a credential's secret replaced: the sidecar adds the
    credential to requests instead, so the container never sees it."""
    secrets = {secret for cred in creds for secret in cred.secrets if secret}
    return {
        name: SECRET_PLACEHOLDER if any(s in value for s in secrets) else value
        for name, value in env.items()
    }


def _sidecar_files(spec: ScriptSpec, network: Network) -> dict[str, bytes]:
    network.reload()
    subnets = [entry["Subnet"] for entry in network.attrs["IPAM"]["Config"] if "Subnet" in entry]
    if not subnets:
        raise DockerRunError(f"The internal network {network.name} has no subnet.")
    config = {
        "port": SIDECAR_PORT,
        "allow_private_network": spec.allow_private_network,
        "clients": subnets,
        "credentials": [
            {
                "name": cred.name,
                "hosts": list(cred.allowed_hosts),
                "headers": cred.apply_to_headers({}),
            }
            for cred in spec.credentials
        ],
    }
    return {
        "sidecar.py": Path(sidecar.__file__).read_bytes(),
        "credentials/__init__.py": b"",
        "credentials/hosts.py": Path(credentials.hosts.__file__).read_bytes(),
        "config.json": json.dumps(config).encode(),
    }


def _tar(files: dict[str, bytes], *, prefix: str) -> bytes:
    """A tar of `files` under `prefix/`, owned by the runner user and readable by it only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories = {prefix} | {f"{prefix}/{name}".rsplit("/", 1)[0] for name in files}
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.uid, info.gid = (
                tarfile.DIRTYPE,
                0o700,
                RUNNER_UID,
                RUNNER_UID,
            )
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, RUNNER_UID, RUNNER_UID
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_logs(container: Container, *, stdout: bool) -> str:
    data = container.logs(stdout=stdout, stderr=not stdout)
    if len(data) > OUTPUT_LIMIT_BYTES:
        cut = len(data) - OUTPUT_LIMIT_BYTES
        data = data[:OUTPUT_LIMIT_BYTES] + f"\n[... {cut} more bytes cut]".encode()
    return data.decode("utf-8", errors="replace")


def _kill(container: Container) -> None:
    try:
        container.kill()
        container.wait(timeout=10)
    except (NotFound, DockerException, requests.exceptions.RequestException):
        logger.warning("Container %s could not be killed; it is removed next", container.id[:12])


def _remove(resources) -> None:
    for resource in resources:
        try:
            if isinstance(resource, Container):
                resource.remove(force=True)
            else:
                resource.remove()
        except NotFound:
            pass
        except DockerException:
            logger.exception("Could not remove %s %s", type(resource).__name__, resource.id[:12])
