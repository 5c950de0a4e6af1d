"""A real console for end-to-end tests: daphne serving the ASGI app on the test database.

pytest-django's live_server is WSGI and serves no WebSockets, so the tests start daphne (the
production server) as a child process on a free loopback port, and stop it by pid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tests.tier2_processes import ChildProcess, child_env, unused_port, wait_for

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


class Daphne(ChildProcess):
    def __init__(self, log_dir: Path, **env: str) -> None:
        self.port = unused_port()
        argv = [
            sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
            "appstrate.asgi:application",
        ]  # fmt: skip
        super().__init__(argv, child_env(**env), log_dir / f"daphne-{self.port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Daphne:
        import urllib.request

        super().start()

        def healthy() -> bool:
            if not self.alive:
                raise AssertionError(f"daphne exited:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, interval=0.2, message="daphne to answer /healthz")
        return self


@pytest.fixture
def console_server(transactional_db, tmp_path, request):
    """daphne on the test database; it executes the runs at tiers 0 and 1, a real Celery worker
    does at tier 2."""
    if settings.REDIS_URL:
        request.getfixturevalue("celery_worker_process")
    with Daphne(tmp_path).start() as server:
        yield server


@pytest.fixture
def demo_workflows(transactional_db):
    from workflows.services import sync_code_workflows

    sync_code_workflows()


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def page():
    """A Chromium page, with Playwright started and stopped around each test.

    pytest-playwright keeps Playwright (and its event loop, marked running in the main thread)
    for the whole session, which breaks every async test that runs after it in the same worker
    ("Runner.run() cannot be called from a running event loop"); this `page` overrides its.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            # While Playwright's loop runs in this thread, asgiref keeps Django's connections
            # per context, apart from the thread's own that pytest-django closes: a session
            # opened by the test (or a fixture) meanwhile would keep PostgreSQL from dropping
            # the test database at the end.
            connections.close_all()
            context.close()
            browser.close()


def set_served_password(user, password: str = "password") -> None:
    """A password daphne can check: the test process hashes with MD5 (tests/conftest.py),
    which the server, with the default hashers, does not accept."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user.password = PBKDF2PasswordHasher().encode(password, "e2esalt", iterations=1000)
    user.save(update_fields=["password"])


def login(page, server, username: str, password: str = "password") -> None:
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.url}/admin/")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
