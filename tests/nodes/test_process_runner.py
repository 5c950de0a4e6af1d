import json
import os
import threading
import time
from pathlib import Path

from infra.runners.base import ScriptSpec
from infra.runners.process import ProcessRunAdapter
from tests.infra.processes import pid_is_gone


def run(source, *, language="python", cancel=None, log=None, **spec):
    adapter = ProcessRunAdapter()
    return adapter.run_script(
        ScriptSpec(language=language, source=source, **spec),
        cancel=cancel or threading.Event(),
        log=log,
    )


def alive(pid: int) -> bool:
    return not pid_is_gone(pid)


def test_it_gives_the_script_a_clean_environment_and_its_own_working_directory():
    source = "import json, os\nprint(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))\n"
    result = run(source, env={"GREETING": "hi"})
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out["env"]) <= {"PATH", "HOME", "LANG", "GREETING", "LC_CTYPE"}
    assert out["env"]["GREETING"] == "hi"
    assert out["env"]["HOME"] == out["cwd"]
    assert "appstrate-script-" in out["cwd"]
    assert not Path(out["cwd"]).exists()  # removed afterwards
    assert "DJANGO_SETTINGS_MODULE" not in out["env"]


def test_it_passes_stdin_and_captures_stdout_and_stderr():
    source = (
        "import sys\ndata = sys.stdin.read()\nprint(data.upper())\nprint('oops', file=sys.stderr)\n"
    )
    result = run(source, stdin="hello")
    assert (result.exit_code, result.stdout.strip(), result.stderr.strip()) == (0, "HELLO", "oops")


def test_it_runs_shell_scripts_and_reports_their_exit_code():
    result = run("echo one\necho two >&2\nexit 3\n", language="shell")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "one\n", "two\n")


def test_it_kills_the_whole_process_group_on_timeout():
    source = "sleep 300 &\necho $!\nsleep 300\n"
    started = time.monotonic()
    result = run(source, language="shell", timeout_seconds=0.5)
    assert time.monotonic() - started < 3
    assert result.timed_out and result.exit_code is None
    background = int(result.stdout.split()[0])
    deadline = time.monotonic() + 2
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(background)


def test_it_kills_the_script_when_cancel_is_set():
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result = run("import time\ntime.sleep(60)\n", cancel=cancel)
    assert result.cancelled and not result.timed_out
    assert time.monotonic() - started < 1.5


def test_it_leaves_nothing_running_after_a_normal_exit():
    result = run("sleep 300 &\necho $!\n", language="shell")
    assert result.exit_code == 0
    background = int(result.stdout.split()[0])
    deadline = time.monotonic() + 2
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(background)


def test_it_enforces_the_memory_limit():
    source = "x = bytearray(400 * 1024 * 1024)\nprint('allocated')\n"
    result = run(source, memory_limit_mb=128)
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


def test_it_streams_each_line_to_the_log_as_it_is_printed():
    seen = []
    source = "import time\nprint('first')\ntime.sleep(1)\nprint('second')\n"
    started = time.monotonic()
    result = run(source, log=lambda line: seen.append((line, time.monotonic() - started)))
    assert [line for line, _ in seen] == ["first", "second"]
    assert seen[0][1] < seen[1][1] - 0.5  # the first line arrived before the script ended
    assert result.stdout == "first\nsecond\n"


def test_it_does_not_inherit_the_parent_environment(monkeypatch):
    monkeypatch.setenv("APPSTRATE_TEST_LEAK", "leaked")
    result = run('echo "[$APPSTRATE_TEST_LEAK]"', language="shell")
    assert result.stdout.strip() == "[]"
    assert os.environ["APPSTRATE_TEST_LEAK"] == "leaked"


def test_it_reports_a_script_that_cannot_start_as_a_failed_exit():
    # So little address space that the interpreter cannot even load.
    result = run("print('never')", memory_limit_mb=1)
    assert result.exit_code not in (0, None)
    assert "never" not in result.stdout


def test_it_bounds_what_it_keeps_of_endless_output():
    source = "import sys\nsys.stdout.write('x' * 5_000_000)\nsys.stdout.flush()\n"
    pieces = []
    result = run(source, log=pieces.append)
    assert result.exit_code == 0
    assert len(result.stdout) <= 1_100_000
    assert "[... output truncated ...]" in result.stdout
    assert max(len(p) for p in pieces) <= 65536
