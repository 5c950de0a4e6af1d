"""One attempt of one step, on a thread of its own so a timeout or a cancel can stop waiting.

Python cannot kill a thread: a `python` step that overruns is abandoned (its result is ignored)
and its `ctx.cancel` is set so cooperative code stops; `script` steps are really killed by the
run adapter, which watches the same event and its own timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from workflows.nodes.base import NodeType, StepContext, StepError


@dataclass
class Attempt:
    step_id: str
    number: int
    ctx: StepContext
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic; None = no step timeout


@dataclass(frozen=True)
class AttemptDone:
    step_id: str
    number: int
    output: Any = None
    error: StepError | None = None


@dataclass(frozen=True)
class LogLine:
    step_id: str
    number: int
    text: str


class Wake:
    """Put on the queue to make the run loop look again (cancel, deadline)."""


def start_attempt(node: NodeType, attempt: Attempt, inbox: queue.SimpleQueue) -> None:
    thread = threading.Thread(
        target=_run_attempt,
        args=(node, attempt, inbox),
        name=f"step-{attempt.ctx.run_id}-{attempt.step_id}",
        daemon=True,
    )
    thread.start()


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
        # Node code may have used the ORM on this thread; its connection dies with it.
        connections.close_all()
    inbox.put(done)
