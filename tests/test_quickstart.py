"""Acceptance 1: on a fresh clone, the README's first command brings up the console at tier 0,
and the login it prints opens the admin index."""

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.infra.processes import ROOT, stop_group, unused_port

LOGIN = re.compile(r"^Operator login: (\S+) / (\S+)$", re.MULTILINE)


def fresh_clone(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(app)], check=True, timeout=120)
    return app


def console_env(port: int) -> dict[str, str]:
    # A fresh shell: none of the suite's tier variables or data dir, nothing from a .env.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("APPSTRATE_", "PYTEST_", "S3_", "CREDENTIALS_", "DJANGO_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "RUN_ADAPTER", "DEBUG"}
    }
    # The same script, but reusing this suite's virtualenv instead of installing another.
    env["APPSTRATE_VENV"] = sys.prefix
    env["APPSTRATE_CONSOLE_ADDR"] = f"127.0.0.1:{port}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for_login(process: subprocess.Popen, log: Path, url: str) -> tuple[str, str]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        output = log.read_text()
        login = LOGIN.search(output)
        if login:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return login.group(1), login.group(2)
            except OSError:
                pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"bin/console did not come up with a login:\n{log.read_text()}")


def log_in_through_the_form(url: str, username: str, password: str) -> str:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{url}/admin/login/?next=/admin/", timeout=10) as response:
        form = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/admin/login/?next=/admin/", data=body, headers={"Referer": f"{url}/admin/login/"}
    )
    with opener.open(request, timeout=30) as response:
        assert response.geturl() == f"{url}/admin/"
        return response.read().decode()


@pytest.mark.timeout(420)
def test_it_starts_the_console_on_a_fresh_clone_and_the_printed_login_works(tmp_path):
    app = fresh_clone(tmp_path)
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "console.log"
    with log.open("w") as out:
        console = subprocess.Popen(
            ["bin/console"],
            cwd=app,
            env=console_env(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: runserver's reloader child stops with it
        )
    try:
        username, password = wait_for_login(console, log, url)
        index = log_in_through_the_form(url, username, password)
    finally:
        stop_group(console)

    # It should show the console's index to the logged-in operator.
    assert "Appstrate console" in index
    assert 'id="logout-form"' in index
    assert username in index
    # At tier 0, in the clone's own data directory; the server announced it once.
    served = log.read_text().split("Console: ", 1)[1]
    assert (app / "data" / "db.sqlite3").exists()
    assert served.count("Appstrate tier 0: database=sqlite") == 1
