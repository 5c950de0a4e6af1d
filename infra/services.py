"""Service probes: shared by boot checks, `manage.py doctor` and `/readyz`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from infra.registry import get_mode

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Probe:
    service: str
    adapter: str
    ok: bool
    detail: str


def probe_database() -> Probe:
    mode = get_mode()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return Probe("database", mode.database, True, "answers")
    except Exception as exc:  # any driver error means "down" to an operator
        return Probe("database", mode.database, False, _first_line(exc))


def probe_redis() -> Probe:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
            socket_timeout=PROBE_TIMEOUT_SECONDS,
        )
        client.ping()
        return Probe("redis", "redis", True, "answers")
    except Exception as exc:
        return Probe("redis", "redis", False, _first_line(exc))


def probe_storage() -> Probe:
    mode = get_mode()
    if mode.storage == "local":
        location = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
        try:
            location.mkdir(parents=True, exist_ok=True)
            # Writing is what runs need; a directory that exists but refuses files is down.
            with tempfile.NamedTemporaryFile(dir=location, prefix=".probe-"):
                pass
            return Probe("storage", "local", True, str(location))
        except OSError as exc:
            return Probe("storage", "local", False, _first_line(exc))
    try:
        from infra.registry import get_storage
        from infra.storage.s3 import check_bucket

        check_bucket(get_storage(), timeout_seconds=PROBE_TIMEOUT_SECONDS)
        return Probe("storage", "s3", True, f"bucket {settings.S3_BUCKET} answers")
    except Exception as exc:
        return Probe("storage", "s3", False, f"bucket {settings.S3_BUCKET}: {_first_line(exc)}")


def probe_docker() -> Probe:
    try:
        import docker

        kwargs = {"timeout": int(PROBE_TIMEOUT_SECONDS) or 1}
        client = (
            docker.DockerClient(base_url=settings.DOCKER_HOST, **kwargs)
            if settings.DOCKER_HOST
            else docker.from_env(**kwargs)
        )
        client.ping()
        return Probe("docker", "docker", True, "engine answers")
    except Exception as exc:
        return Probe("docker", "docker", False, _docker_reason(exc))


def probe_run_image() -> Probe:
    """Whether the engine has settings.RUN_IMAGE (built locally by infra/images/build.sh)."""
    try:
        from infra.runners.docker import docker_client

        docker_client(timeout=int(PROBE_TIMEOUT_SECONDS) or 1).images.get(settings.RUN_IMAGE)
        return Probe("run image", "docker", True, settings.RUN_IMAGE)
    except Exception as exc:
        return Probe("run image", "docker", False, f"{settings.RUN_IMAGE}: {_first_line(exc)}")


def probe_all() -> list[Probe]:
    """Probe every service the current mode uses."""
    mode = get_mode()
    probes = [probe_database()]
    if mode.executor == "celery":
        probes.append(probe_redis())
    probes.append(probe_storage())
    if mode.run_adapter == "docker":
        probes.append(probe_docker())
        probes.append(probe_run_image())
    return probes


def check_boot_requirements() -> None:
    """Stop the process when a chosen adapter cannot work at all (DESIGN.md section 1)."""
    mode = get_mode()
    if mode.run_adapter == "docker":
        probe = probe_docker()
        if not probe.ok:
            raise ImproperlyConfigured(
                f"RUN_ADAPTER=docker but no Docker engine answers ({probe.detail}). "
                "Fix: start dockerd or set DOCKER_HOST, or unset RUN_ADAPTER to run steps "
                "as subprocesses."
            )
        probe = probe_run_image()
        if not probe.ok:
            raise ImproperlyConfigured(
                f"RUN_ADAPTER=docker but the engine has no run image ({probe.detail}). "
                "Fix: build it with infra/images/build.sh, or set RUN_IMAGE to an image with "
                "python3 and a user with uid 10001."
            )
    if mode.storage == "s3":
        probe = probe_storage()
        if not probe.ok:
            raise ImproperlyConfigured(
                f"S3_BUCKET={settings.S3_BUCKET!r} is set but the bucket cannot be used "
                f"({probe.detail}). Fix: create the bucket, or check S3_ENDPOINT_URL, "
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY; or unset S3_BUCKET to store files "
                "on the local disk."
            )


def _docker_reason(exc: BaseException) -> str:
    # docker-py nests the urllib3 error three deep; the operator needs where and why.
    where = settings.DOCKER_HOST or "the default socket (unix:///var/run/docker.sock)"
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("No such file", "no socket there"),
        ("timed out", "timed out"),
        ("Permission denied", "permission denied"),
    ):
        if needle in text:
            return f"{reason} at {where}"
    return f"{_first_line(exc)[:200]} at {where}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")
