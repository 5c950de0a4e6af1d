"""Real `daphne` web processes for tests that need more than one server."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.infra.processes import serving, unused_port


def request(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@contextmanager
def daphne(env: dict[str, str], log: Path) -> Iterator[str]:
    """Serve the project on a free loopback port; yield its base URL; stop it afterwards."""
    port = unused_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with serving([*command, "appstrate.asgi:application"], port=port, env=env, log=log):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def several_daphnes(count: int, env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(daphne(env, logs / f"daphne-{i}.log")) for i in range(count)]


def server_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without test-only variables, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "S3_"))
        and key not in {"RUN_MAIN", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        APPSTRATE_DATA_DIR=str(data_dir), APPSTRATE_ENV_FILE="/dev/null", PYTHONUNBUFFERED="1"
    )
    env.update(overrides)
    return env
