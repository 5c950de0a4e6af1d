"""One attempt of one step, on a thread of its own so a timeout or a cancel can stop waiting.

Python cannot kill a thread: a `python` step that overruns is abandoned (its result is ignored)
and its `ctx.cancel` is set so cooperative code stops; `script` steps are really killed by the
run adapter, which watches the same event and its own timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connections
from django.utils import timezone

from workflows.nodes.base import NodeType, StepContext, StepError


@dataclass
class Attempt:
    step_id: str
    number: int
    ctx: StepContext
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic; None = no step timeout

    def restart_clock(self) -> None:
        now = time.monotonic()
        if self.deadline is not None:
            self.deadline += now - self.started
        self.started = now


@dataclass(frozen=True)
class AttemptDone:
    step_id: str
    number: int
    output: Any = None
    error: StepError | None = None
    ended: float = field(default_factory=time.monotonic)  # when execute() returned or raised
    ended_at: datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class LogLine:
    step_id: str
    number: int
    text: str


class Wake:
    """Put on the queue to make the run loop look again (cancel, deadline)."""


def start_attempt(node: NodeType, attempt: Attempt, inbox: queue.SimpleQueue) -> None:
    _pool.submit(partial(_run_attempt, node, attempt, inbox))


class _AttemptPool:
    """Threads that outlive one attempt: handing work to a waiting thread costs a few
    microseconds, starting a thread a few hundred. An abandoned attempt (timed out) keeps its
    thread busy and the pool grows; threads idle for a minute leave."""

    IDLE_SECONDS = 60.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not yet promised one

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            threading.Thread(
                target=self._work, args=(job,), name="appstrate-step", daemon=True
            ).start()
        else:
            self._jobs.put(job)

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            while True:
                try:
                    job = self._jobs.get(timeout=self.IDLE_SECONDS)
                    break
                except queue.Empty:
                    with self._lock:
                        if self._idle > 0:  # nobody was promised this thread: leave
                            self._idle -= 1
                            return


_pool = _AttemptPool()


def _run_attempt(node: NodeType, attempt: Attempt, inbox: queue.SimpleQueue) -> None:
    try:
        output = node.execute(attempt.ctx)
        done = AttemptDone(attempt.step_id, attempt.number, output=output)
    except StepError as exc:
        done = AttemptDone(attempt.step_id, attempt.number, error=exc)
    except Exception as exc:
        # Project code raising anything is a failed attempt, retryable like any error.
        error = StepError(f"{type(exc).__name__}: {exc}")
        done = AttemptDone(attempt.step_id, attempt.number, error=error)
    finally:
        # Node code may have used the ORM on this pooled thread: give its connection back.
        connections.close_all()
    inbox.put(done)
