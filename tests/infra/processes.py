"""Run manage.py and servers as real processes, with exactly the environment a test names."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Everything settings reads that could leak in from the pass the suite runs in.
INHERITED_OUT = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PREFIX",
    "RUN_ADAPTER",
    "DOCKER_HOST",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "RUN_MAIN",
    "CREDENTIALS_KEYS",
    "CREDENTIALS_KEYS_FILE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # tests/conftest.py sets it for Playwright
}
STARTUP_LINE = re.compile(r"Appstrate tier \d: database=")


def process_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in INHERITED_OUT and not key.startswith(("S3_", "PYTEST_"))
    }
    env.update(
        APPSTRATE_DATA_DIR=str(data_dir), APPSTRATE_ENV_FILE="/dev/null", PYTHONUNBUFFERED="1"
    )
    env.update(overrides)
    return env


def manage(*args: str, data_dir: Path, timeout: float = 60, **env: str):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def startup_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if STARTUP_LINE.search(line)]


def unused_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def serving(command: list[str], *, port: int, env: dict[str, str], log: Path) -> Iterator:
    """Start a server process, wait until /healthz answers, and stop it (and its children)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, so the autoreloader's child stops too
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield process
    finally:
        stop_group(process, timeout=10)


def stop_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process's group (started with start_new_session), SIGKILL it if it has not
    ended within `timeout` seconds; reap it either way."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def pid_is_gone(pid: int) -> bool:
    """True when the process has exited (a zombie counts: its parent just has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        # A process vanishing while /proc is read gives ESRCH rather than ENOENT.
        return True
    return state in ("Z", "X")
