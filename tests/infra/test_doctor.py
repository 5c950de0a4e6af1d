"""`manage.py doctor`: the adapter of each port, and each configured service checked."""

import dataclasses

import pytest
from django.core.management import CommandError, call_command

from tests.infra.processes import manage, unused_port

PORTS = ("database", "executor", "channels", "pubsub", "ratelimit_cache", "storage", "run_adapter")


def test_it_shows_each_port_and_passes_at_tier_0(tmp_path):
    result = manage("doctor", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = dict(line.split()[:2] for line in result.stdout.splitlines() if line.strip())
    assert "Appstrate tier 0" in result.stdout
    assert {port: rows[port] for port in PORTS} == {
        "database": "sqlite",
        "executor": "inline",
        "channels": "inmemory",
        "pubsub": "local",
        "ratelimit_cache": "locmem",
        "storage": "local",
        "run_adapter": "process",
    }
    assert "All services answer." in result.stdout


def test_it_exits_non_zero_naming_the_services_that_are_down(tmp_path):
    result = manage(
        "doctor",
        data_dir=tmp_path,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{unused_port()}/appstrate",
        REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0",
    )
    assert result.returncode != 0
    # It should show the tier 2 adapters, then name each service that did not answer.
    assert "executor         celery" in result.stdout
    assert "redis            redis        DOWN" in result.stdout
    assert "Service(s) down: database, redis" in result.stderr


@pytest.fixture
def redis_down(settings):
    """Redis configured (as at tier 2) on a loopback port where nothing listens."""
    settings.APPSTRATE_MODE = dataclasses.replace(
        settings.APPSTRATE_MODE, executor="celery", pubsub="redis"
    )
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_port()}/0"


@pytest.mark.django_db
def test_it_names_redis_alone_when_only_redis_is_down(redis_down, capsys):
    with pytest.raises(CommandError, match=r"^Service\(s\) down: redis$"):
        call_command("doctor")
    out = capsys.readouterr().out
    assert "database         " in out
    assert "redis            redis        DOWN  ConnectionError" in out


def test_it_reports_a_down_docker_engine_where_other_processes_refuse_to_start(tmp_path):
    closed = f"tcp://127.0.0.1:{unused_port()}"
    result = manage("doctor", data_dir=tmp_path, RUN_ADAPTER="docker", DOCKER_HOST=closed)
    # It should still print the table, then exit non-zero naming the engine.
    assert result.returncode != 0
    assert "run_adapter      docker" in result.stdout
    assert f"docker           docker       DOWN  connection refused at {closed}" in result.stdout
    assert "Service(s) down: docker" in result.stderr
