"""A misconfigured tier 3 service stops the process at boot with a message naming the fix."""

import os
import socket
import subprocess
import sys

import pytest
from django.conf import settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _boot(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "RUN_ADAPTER"))}
    for name in ("DATABASE_URL", "REDIS_URL"):
        base.pop(name, None)
    base.update(APPSTRATE_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_boot_with_an_unreachable_bucket(tmp_path):
    result = _boot(
        tmp_path,
        S3_BUCKET="appstrate-missing",
        S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}",
        S3_ACCESS_KEY_ID="key",
        S3_SECRET_ACCESS_KEY="secret",
    )
    assert result.returncode != 0
    assert "S3_BUCKET='appstrate-missing'" in result.stderr
    assert "Fix:" in result.stderr
    assert "Traceback" not in result.stderr.split("ImproperlyConfigured")[-1]


@pytest.mark.tier3
def test_it_refuses_to_boot_with_wrong_s3_keys(tmp_path):
    result = _boot(
        tmp_path,
        S3_BUCKET=settings.S3_BUCKET,
        S3_ENDPOINT_URL=settings.S3_ENDPOINT_URL,
        S3_ACCESS_KEY_ID=settings.S3_ACCESS_KEY_ID,
        S3_SECRET_ACCESS_KEY="not-the-secret",
    )
    assert result.returncode != 0
    assert f"S3_BUCKET={settings.S3_BUCKET!r}" in result.stderr
    assert "S3_SECRET_ACCESS_KEY" in result.stderr
    # It should never echo the secret it was given.
    assert "not-the-secret" not in result.stderr


@pytest.mark.tier3
def test_it_boots_with_the_configured_bucket(tmp_path):
    result = _boot(
        tmp_path,
        S3_BUCKET=settings.S3_BUCKET,
        S3_ENDPOINT_URL=settings.S3_ENDPOINT_URL,
        S3_ACCESS_KEY_ID=settings.S3_ACCESS_KEY_ID,
        S3_SECRET_ACCESS_KEY=settings.S3_SECRET_ACCESS_KEY,
    )
    assert result.returncode == 0, result.stderr
    assert "storage=s3" in result.stderr


def test_it_refuses_docker_without_an_engine(tmp_path):
    result = _boot(tmp_path, RUN_ADAPTER="docker", DOCKER_HOST=f"tcp://127.0.0.1:{_free_port()}")
    assert result.returncode != 0
    assert "RUN_ADAPTER=docker" in result.stderr
    assert "Fix:" in result.stderr


@pytest.mark.tier3
def test_it_refuses_docker_without_the_run_image(tmp_path):
    result = _boot(tmp_path, RUN_ADAPTER="docker", RUN_IMAGE="appstrate/never-built:none")
    assert result.returncode != 0
    assert "appstrate/never-built:none" in result.stderr
    assert "infra/images/build.sh" in result.stderr
