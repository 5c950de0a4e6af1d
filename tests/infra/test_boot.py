"""What a process does at start: refuse bad environments plainly, read .env, make dev secrets."""

import secrets

import pytest

from tests.infra.processes import last_line, manage, startup_lines, unused_port


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/0"},
            "REDIS_URL is set but DATABASE_URL is not PostgreSQL",
        ),
        ({"RUN_ADAPTER": "kubernetes"}, "RUN_ADAPTER='kubernetes' is not a known run adapter"),
        ({"DATABASE_URL": "appstrate.sqlite3"}, "DATABASE_URL could not be parsed"),
        ({"DATABASE_URL": "postgres://u:pw@db:port/x"}, "DATABASE_URL could not be parsed"),
        ({"DATABASE_URL": "mysql://db/appstrate"}, "DATABASE_URL uses the unsupported scheme"),
        ({"DEBUG": "false"}, "SECRET_KEY is not set and DEBUG is off"),
    ],
)
def test_it_stops_a_bad_environment_with_a_readable_last_line(tmp_path, env, message):
    result = manage("check", data_dir=tmp_path, **env)
    # It should exit non-zero, the message naming the variable and the fix, with no traceback.
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("Appstrate cannot start: ")
    assert message in line
    assert "Fix:" in line
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


def test_it_stops_when_run_adapter_docker_has_no_engine(tmp_path):
    closed = f"tcp://127.0.0.1:{unused_port()}"
    result = manage("check", data_dir=tmp_path, RUN_ADAPTER="docker", DOCKER_HOST=closed)
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("Appstrate cannot start: RUN_ADAPTER=docker but no Docker engine")
    assert "Fix: start dockerd or set DOCKER_HOST" in line
    # It should not have claimed to start.
    assert startup_lines(result.stderr) == []


def test_it_is_clean_under_check_deploy_with_production_settings(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        data_dir=tmp_path,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(60),
        CREDENTIALS_KEYS="k1:" + secrets.token_urlsafe(32),
        ALLOWED_HOSTS="appstrate.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_generates_the_dev_secret_key_once_into_the_data_dir(tmp_path):
    show_key = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = manage("shell", "-c", show_key, data_dir=tmp_path)
    second = manage("shell", "-c", show_key, data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    key = last_line(first.stdout)
    # It should be long, stored in data/, and the same on the next start.
    assert len(key) >= 50
    assert (tmp_path / "secret_key").read_text().strip() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert last_line(second.stdout) == key


def test_it_uses_the_given_secret_key_and_writes_none(tmp_path):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        data_dir=tmp_path,
        SECRET_KEY="k" * 60,
    )
    assert last_line(result.stdout) == "k" * 60
    assert not (tmp_path / "secret_key").exists()


def test_it_reads_env_file_and_real_variables_win(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("TIME_ZONE=Europe/Paris\nLOG_LEVEL=WARNING\nRUN_ADAPTER=kubernetes\n")
    show = "from django.conf import settings; print(settings.TIME_ZONE, settings.LOG_LEVEL)"
    result = manage(
        "shell", "-c", show, data_dir=tmp_path / "data", RUN_ADAPTER="process", LOG_LEVEL="DEBUG"
    )
    # Without the file pointed at, nothing from it applies.
    assert last_line(result.stdout).split() == ["UTC", "DEBUG"]

    result = manage(
        "shell",
        "-c",
        show,
        data_dir=tmp_path / "data",
        APPSTRATE_ENV_FILE=str(env_file),
        RUN_ADAPTER="process",
        LOG_LEVEL="DEBUG",
    )
    # It should take TIME_ZONE from the file, but keep the real LOG_LEVEL and RUN_ADAPTER
    # (the file's unknown adapter would have stopped the process).
    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout).split() == ["Europe/Paris", "DEBUG"]
