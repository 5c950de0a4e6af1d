import dataclasses
import json
import sys

import pytest

from tests.infra.processes import get, process_env, serving, startup_lines, unused_port


def test_it_answers_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_answers_readyz_when_services_are_up(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert body["services"]["database"] == {"ok": True, "adapter": settings.APPSTRATE_MODE.database}
    assert body["services"]["storage"]["ok"] is True


@pytest.mark.django_db
def test_it_redirects_root_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db
def test_it_answers_503_naming_redis_when_redis_is_down(client, settings):
    settings.APPSTRATE_MODE = dataclasses.replace(settings.APPSTRATE_MODE, executor="celery")
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["redis"]
    assert body["services"]["redis"] == {"ok": False, "adapter": "redis"}


@pytest.mark.django_db
def test_it_answers_503_naming_storage_when_files_cannot_be_written(client, settings, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "a-file" / "storage"},
        },
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["storage"]


def test_it_answers_503_naming_the_database_when_it_cannot_be_reached(tmp_path):
    # A real server process whose PostgreSQL is a loopback port where nothing listens.
    port = unused_port()
    env = process_env(
        tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{unused_port()}/appstrate"
    )
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with serving(
        [*command, "appstrate.asgi:application"], port=port, env=env, log=tmp_path / "server.log"
    ):
        status, body = get(f"http://127.0.0.1:{port}/readyz")
    assert status == 503
    assert json.loads(body)["down"] == ["database"]
    assert len(startup_lines((tmp_path / "server.log").read_text())) == 1
