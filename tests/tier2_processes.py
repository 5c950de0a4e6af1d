"""Real tier 2 processes for tests: Celery workers, the scheduler, a private redis-server.

Each one is started in its own session (process group) so a test can SIGKILL it whole, and is
stopped by the fixture that started it, by pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    """The URL of the database this test process uses (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    """This test process's configuration, pointed at its test database, for a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DATABASE_URL=test_database_url(),
        REDIS_PREFIX=settings.REDIS_PREFIX,
        APPSTRATE_DATA_DIR=str(settings.DATA_DIR),
        CREDENTIALS_KEYS=settings.CREDENTIALS_KEYS,
        PYTHONUNBUFFERED="1",
        # Fast heartbeats so a killed executor is noticed within seconds, not half a minute.
        HEARTBEAT_SECONDS="0.5",
        ORPHAN_AFTER_SECONDS="3",
        # Workers sweep only in the tests about it: elsewhere a test's runs stay where it put them.
        WORKER_SWEEP_SECONDS="0",
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(overrides)
    return env


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


class ChildProcess:
    """A process in its own group, its output in a log file the test can read."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> ChildProcess:
        # Output of an earlier start (a restart appends to the same log) does not count.
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it for its life)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the process printed since its last start."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, with no chance to clean up."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Pool children left behind by a slow shutdown go with the group.
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)


class CeleryWorker(ChildProcess):
    """`celery -A appstrate worker`, exactly the production command, on this test's database."""

    QUEUES = ("appstrate", "special")

    def __init__(self, log_dir: Path, *, concurrency: int = 2, env: dict | None = None) -> None:
        name = f"tests-{uuid.uuid4().hex[:6]}@%h"
        argv = [
            sys.executable, "-m", "celery", "-A", "appstrate", "worker",
            "--pool=prefork", f"--concurrency={concurrency}", "-Q", ",".join(self.QUEUES),
            "-n", name, "--without-gossip", "--without-mingle", "--loglevel=INFO",
        ]  # fmt: skip
        super().__init__(argv, env or child_env(), log_dir / f"worker-{uuid.uuid4().hex[:6]}.log")

    def start(self, timeout: float = 60) -> CeleryWorker:
        super().start()
        wait_for(
            lambda: " ready." in self.output() or not self.alive,
            timeout,
            message="the Celery worker to be ready",
        )
        if not self.alive:
            raise AssertionError(f"Celery worker exited:\n{self.output()[-3000:]}")
        return self


class RedisServer(ChildProcess):
    """A private redis-server on a free loopback port: a test may stop it, never the shared one."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = port or unused_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(data_dir),
        ]  # fmt: skip
        super().__init__(argv, dict(os.environ), data_dir / f"redis-{self.port}.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        super().start()
        wait_for(lambda: "Ready to accept connections" in self.output(), timeout, message="redis")
        return self


def reset_celery_connections() -> None:
    """Drop this process's pooled broker connections (after changing the broker URL)."""
    from kombu import pools

    from appstrate.celery import app

    # kombu keeps its pools in process-wide registries keyed by URL: closing only the app's pool
    # would leave a closed pool there for the next publish to the same URL ("Acquire on closed
    # pool"). reset() closes every pool and empties the registries.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


class celery_broker:
    """Point this process's Celery app at another broker URL for the duration of a block."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self):
        from appstrate.celery import app

        self.old = app.conf.broker_url
        app.conf.broker_url = self.url
        reset_celery_connections()
        return self

    def __exit__(self, *exc) -> None:
        from appstrate.celery import app

        reset_celery_connections()
        app.conf.broker_url = self.old
