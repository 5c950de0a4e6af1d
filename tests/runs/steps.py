"""Functions the engine tests' `python` steps call; importing this module registers them.

A ledger file (path in the step's args) records each execution, so tests can count how often a
step really ran, across processes.
"""

from __future__ import annotations

import os
import threading
import time

from workflows.nodes.base import StepError
from workflows.nodes.python import register_function

_calls: dict[str, int] = {}
_calls_lock = threading.Lock()


def _count(key: str) -> int:
    with _calls_lock:
        _calls[key] = _calls.get(key, 0) + 1
        return _calls[key]


def calls(key: str) -> int:
    return _calls.get(key, 0)


def call_times(key: str) -> list[float]:
    return list(_calls.get(f"{key}:times", []))


def reset_calls() -> None:
    _calls.clear()


def noop() -> dict:
    return {}


def echo(**kwargs) -> dict:
    return kwargs


def add(a: int, b: int) -> int:
    return a + b


def ledger(path: str, name: str, sleep: float = 0.0) -> dict:
    """Sleep, then append `name` to the ledger: a step that completed wrote exactly one line."""
    time.sleep(sleep)
    with open(path, "a") as file:
        file.write(f"{name}\n")
        file.flush()
        os.fsync(file.fileno())
    return {"step": name}


def flaky(key: str, failures: int) -> dict:
    """Fail the first `failures` calls for `key`, then succeed; records each call's time."""
    n = _count(key)
    with _calls_lock:
        _calls.setdefault(f"{key}:times", []).append(time.monotonic())
    if n <= failures:
        raise StepError(f"attempt {n} failed on purpose")
    return {"calls": n}


def fatal(message: str = "no") -> dict:
    raise StepError(message, retryable=False)


def sleepy(seconds: float, ctx=None) -> dict:
    """Sleeps, ignoring cancellation: only a timeout can stop the engine waiting for it."""
    time.sleep(seconds)
    return {"slept": seconds}


def big(size: int) -> str:
    return "x" * size


def not_json() -> object:
    return {"when": object()}


def log_lines(count: int, ctx=None) -> dict:
    for i in range(count):
        ctx.log(f"line {i}")
    return {"lines": count}


def leak(secret: str, ctx=None) -> dict:
    ctx.secrets.add(secret)
    ctx.log(f"the secret is {secret}")
    return {"echo": secret}


def slow_heartbeats(seconds: float) -> dict:
    """From now on the heartbeat thread beats every `seconds` (a test's `settings` restores it)."""
    from django.conf import settings

    settings.HEARTBEAT_SECONDS = seconds
    return {}


for _fn in (
    noop, echo, add, ledger, flaky, fatal, sleepy, big, not_json, log_lines, leak, slow_heartbeats
):  # fmt: skip
    register_function(_fn, f"enginetest.{_fn.__name__}")
