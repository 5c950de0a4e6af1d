"""Every process start logs one line naming the tier and each port's adapter, exactly once."""

import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest

from tests.infra.processes import (
    ROOT,
    manage,
    process_env,
    serving,
    startup_lines,
    stop_group,
    unused_port,
)


def tier_env(tier: int) -> dict[str, str]:
    # Loopback ports where nothing listens: starting a process must not need the services.
    env = {}
    if tier >= 1:
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{unused_port()}/appstrate"
    if tier >= 2:
        env["REDIS_URL"] = f"redis://127.0.0.1:{unused_port()}/0"
    return env


@pytest.mark.parametrize("tier", [0, 1, 2])
def test_it_logs_the_startup_line_once_per_management_command(tmp_path, tier):
    result = manage("check", data_dir=tmp_path, **tier_env(tier))
    assert result.returncode == 0, result.stderr
    lines = startup_lines(result.stderr)
    assert len(lines) == 1
    assert f"Appstrate tier {tier}: database=" in lines[0]
    assert "run_adapter=process" in lines[0]


@pytest.mark.parametrize("reload", [False, True])
def test_it_logs_the_startup_line_once_when_runserver_serves(tmp_path, reload):
    port = unused_port()
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"]
    if not reload:
        command.append("--noreload")
    log = tmp_path / "server.log"
    # With autoreload, runserver is a watcher process plus the serving child: one line in all.
    with serving(command, port=port, env=process_env(tmp_path), log=log):
        pass
    lines = startup_lines(log.read_text())
    assert len(lines) == 1, log.read_text()
    assert "Appstrate tier 0:" in lines[0]


def test_it_logs_the_startup_line_once_when_daphne_serves_at_tier_2(tmp_path):
    port = unused_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "server.log"
    env = process_env(tmp_path, **tier_env(2))
    with serving([*command, "appstrate.asgi:application"], port=port, env=env, log=log):
        pass
    lines = startup_lines(log.read_text())
    assert len(lines) == 1, log.read_text()
    assert "Appstrate tier 2: database=postgresql executor=celery" in lines[0]


def database_url(db: dict) -> str:
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.tier2
# The worker syncs code workflows into the test database at start; flushed afterwards.
@pytest.mark.django_db(transaction=True)
def test_it_logs_the_startup_line_once_when_a_celery_worker_starts(tmp_path, settings):
    env = process_env(
        tmp_path,
        DATABASE_URL=database_url(settings.DATABASES["default"]),
        REDIS_URL=settings.REDIS_URL,
        REDIS_PREFIX=f"foundation-{uuid.uuid4().hex[:8]}",
    )
    log = tmp_path / "worker.log"
    # A queue of its own, so this worker never takes another test's task.
    queue = f"startup-line-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "celery", "-A", "appstrate", "worker", "-c", "2", "-l", "info"]
    command += ["-Q", queue]
    with log.open("w") as out:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        stop_group(worker)
    # The prefork children are forked after setup: still one line for the whole worker.
    lines = startup_lines(log.read_text())
    assert len(lines) == 1, log.read_text()
    assert "Appstrate tier 2:" in lines[0]


@pytest.mark.tier3
def test_it_logs_the_startup_line_once_at_tier_3(tmp_path, settings):
    # The tier 3 pass's own services: its PostgreSQL, Redis, S3 server and Docker engine.
    s3 = {
        name: getattr(settings, name)
        for name in ("S3_BUCKET", "S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
    }
    result = manage(
        "check",
        data_dir=tmp_path,
        DATABASE_URL=database_url(settings.DATABASES["default"]),
        REDIS_URL=settings.REDIS_URL,
        RUN_ADAPTER="docker",
        **({"DOCKER_HOST": settings.DOCKER_HOST} if settings.DOCKER_HOST else {}),
        **s3,
    )
    assert result.returncode == 0, result.stderr
    lines = startup_lines(result.stderr)
    assert len(lines) == 1
    assert "Appstrate tier 3:" in lines[0]
    assert "storage=s3 run_adapter=docker" in lines[0]
