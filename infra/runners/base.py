"""The run-adapter port: how a `script` step's code is isolated (subprocess or container)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScriptSpec:
    language: str  # "python" | "shell"
    source: str
    env: dict[str, str] = field(default_factory=dict)  # the only environment the code sees
    stdin: str = ""
    timeout_seconds: float = 60.0
    memory_limit_mb: int = 512
    # The credentials the step named (credentials.resolved.ResolvedCredential). The process
    # adapter needs only `env`; the docker adapter hands them to its sidecar proxy, which adds
    # them to requests for their allowed hosts, and blanks their secret values in `env`, so the
    # container never holds a secret.
    credentials: tuple[Any, ...] = ()
    # The workflow's `allow_private_network` policy: whether the sidecar may connect to
    # private, loopback and link-local addresses.
    allow_private_network: bool = False


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int | None  # None when killed (timeout or cancel)
    stdout: str
    stderr: str
    timed_out: bool = False
    cancelled: bool = False


class RunAdapter(ABC):
    @abstractmethod
    def run_script(
        self,
        spec: ScriptSpec,
        *,
        cancel: threading.Event,
        log: Callable[[str], None] | None = None,
    ) -> ScriptResult:
        """Run the code to completion, or kill it when `spec.timeout_seconds` passes or `cancel`
        is set. Kills the whole process tree or container; never leaves it running.
        `log`, when given, receives each line of output as it arrives (live step logs)."""
