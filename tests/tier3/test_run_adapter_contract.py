"""The run-adapter port's contract, the same for the process and the docker adapter."""

import threading
import time

import pytest

from infra.runners.base import ScriptSpec
from infra.runners.docker import DockerRunAdapter
from infra.runners.process import ProcessRunAdapter
from tests.tier3.conftest import run_script


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.tier3)])
def adapter(request):
    return ProcessRunAdapter() if request.param == "process" else DockerRunAdapter()


def test_it_gives_stdin_and_env_and_returns_both_streams(adapter):
    result = run_script(
        adapter,
        language="python",
        source="import os, sys\nprint(sys.stdin.read()[::-1], os.environ['WHO'])\n"
        "print('é to stderr', file=sys.stderr)\nsys.exit(4)",
        stdin="cba",
        env={"WHO": "me"},
    )
    assert (result.exit_code, result.stdout, result.stderr) == (4, "abc me\n", "é to stderr\n")
    assert not result.timed_out and not result.cancelled


def test_it_runs_shell_scripts(adapter):
    result = run_script(
        adapter, language="shell", source='read line; echo "got $line"', stdin="x\n"
    )
    assert (result.exit_code, result.stdout) == (0, "got x\n")


def test_it_kills_on_timeout_with_no_exit_code(adapter):
    started = time.monotonic()
    result = run_script(adapter, language="shell", source="sleep 60", timeout_seconds=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 30


def test_it_kills_on_cancel_with_no_exit_code(adapter):
    cancel = threading.Event()

    def log(line):
        if line == "up":
            cancel.set()

    result = adapter.run_script(
        ScriptSpec(language="shell", source="echo up; sleep 60"), cancel=cancel, log=log
    )
    assert result.cancelled and result.exit_code is None
    assert result.stdout == "up\n"
