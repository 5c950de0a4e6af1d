"""Run a `script` step as a local subprocess (tiers 0 to 2).

The child gets a clean environment (PATH, HOME, LANG and the variables the step gives it), a
temporary working directory of its own that is removed afterwards, an address-space limit, and
its own process group so that a timeout or a cancel kills everything it started.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from infra.runners.base import RunAdapter, ScriptResult, ScriptSpec

# A fixed PATH: the child must not inherit the server's environment, PATH included.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_CAPTURE_BYTES = 1_000_000  # per stream; the start and end are kept, the middle dropped
POLL_SECONDS = 0.02
MAX_LINE_BYTES = 65536  # longer lines reach the log in pieces


def _interpreter(language: str, path: Path) -> list[str]:
    if language == "python":
        # -I: isolated (ignores PYTHON* variables and the user site), -u: unbuffered output so
        # progress lines arrive as they are printed.
        return [sys.executable, "-I", "-u", str(path)]
    if language == "shell":
        return [shutil.which("bash", path=SAFE_PATH) or "/bin/sh", str(path)]
    raise ValueError(f"unknown script language {language!r}")


def _limits(memory_limit_mb: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class _Capture:
    """Reads one stream line by line in a thread, forwarding lines to `log` and keeping a
    bounded copy."""

    def __init__(self, stream: IO[bytes], log: Callable[[str], None] | None) -> None:
        self.head: list[str] = []
        self.tail: list[str] = []
        self.size = 0
        self.tail_size = 0
        self.dropped = False
        self.log = log
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            # Bounded reads: one endless line must not fill the executor's memory.
            for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                line = raw.decode("utf-8", errors="replace")
                self._keep(line)
                if self.log is not None:
                    try:
                        self.log(line.rstrip("\n"))
                    except Exception:  # a failing log sink must not lose the output
                        self.log = None

    def _keep(self, line: str) -> None:
        if self.size + len(line) <= MAX_CAPTURE_BYTES // 2:
            self.head.append(line)
            self.size += len(line)
            return
        self.dropped = True
        self.tail.append(line)
        self.tail_size += len(line)
        while self.tail_size > MAX_CAPTURE_BYTES // 2 and len(self.tail) > 1:
            self.tail_size -= len(self.tail.pop(0))

    def text(self) -> str:
        self.thread.join(timeout=2)
        middle = ["[... output truncated ...]\n"] if self.dropped else []
        return "".join(self.head + middle + self.tail)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ProcessRunAdapter(RunAdapter):
    def run_script(
        self,
        spec: ScriptSpec,
        *,
        cancel: threading.Event,
        log: Callable[[str], None] | None = None,
    ) -> ScriptResult:
        workdir = Path(tempfile.mkdtemp(prefix="appstrate-script-"))
        try:
            return self._run(spec, workdir, cancel, log)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run(
        self,
        spec: ScriptSpec,
        workdir: Path,
        cancel: threading.Event,
        log: Callable[[str], None] | None,
    ) -> ScriptResult:
        script = workdir / ("script.py" if spec.language == "python" else "script.sh")
        script.write_text(spec.source)
        env = {**spec.env, "PATH": SAFE_PATH, "HOME": str(workdir), "LANG": "C.UTF-8"}
        try:
            proc = self._start(spec, script, workdir, env)
        except (OSError, subprocess.SubprocessError) as exc:
            return ScriptResult(exit_code=127, stdout="", stderr=f"could not start: {exc}")
        stdout, stderr = _Capture(proc.stdout, log), _Capture(proc.stderr, log)
        threading.Thread(target=_feed, args=(proc.stdin, spec.stdin), daemon=True).start()
        deadline = time.monotonic() + spec.timeout_seconds
        timed_out = cancelled = False
        while proc.poll() is None:
            if cancel.is_set():
                cancelled = True
            elif time.monotonic() >= deadline:
                timed_out = True
            if cancelled or timed_out:
                _kill_group(proc)
                proc.wait()
                break
            cancel.wait(POLL_SECONDS)
        # Whatever the leader did, nothing it started may outlive the step.
        _kill_group(proc)
        killed = cancelled or timed_out
        return ScriptResult(
            exit_code=None if killed else proc.returncode,
            stdout=stdout.text(),
            stderr=stderr.text(),
            timed_out=timed_out,
            cancelled=cancelled,
        )

    def _start(
        self, spec: ScriptSpec, script: Path, workdir: Path, env: dict[str, str]
    ) -> subprocess.Popen:
        return subprocess.Popen(
            _interpreter(spec.language, script),
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: one killpg ends the whole tree
            preexec_fn=_limits(spec.memory_limit_mb),
            close_fds=True,
        )


def _feed(stdin: IO[bytes], text: str) -> None:
    # A script may exit without reading its input: that is not an error of ours.
    with contextlib.suppress(BrokenPipeError, OSError), stdin:
        if text:
            stdin.write(text.encode())
