"""The production shape: DEBUG off, served by daphne alone (as in the Dockerfile)."""

import secrets
import sys

from tests.infra.processes import get, manage, process_env, serving, unused_port


def production_env() -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "CREDENTIALS_KEYS": "k1:" + secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1",
        # TLS is terminated in front of the app; here the test talks plain HTTP on loopback.
        "SECURE_SSL_REDIRECT": "false",
    }


def test_it_serves_the_console_static_files_with_debug_off(tmp_path):
    env = production_env()
    collected = manage("collectstatic", "--no-input", data_dir=tmp_path, **env)
    assert collected.returncode == 0, collected.stderr
    port = unused_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with serving(
        [*command, "appstrate.asgi:application"],
        port=port,
        env=process_env(tmp_path, **env),
        log=tmp_path / "server.log",
    ):
        status, body = get(f"http://127.0.0.1:{port}/static/admin/css/base.css")
        missing, _ = get(f"http://127.0.0.1:{port}/static/no-such-file.css")
    # It should serve the admin's CSS (the console is unusable without it), and 404 the rest.
    assert status == 200
    assert b"body" in body
    assert missing == 404
