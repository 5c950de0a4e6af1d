"""The run-adapter port: how a `script` step's code is isolated (subprocess or container)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScriptSpec:
    language: str  # "python" | "shell"
    source: str
    env: dict[str, str] = field(default_factory=dict)  # the only environment the code sees
    stdin: str = ""
    timeout_seconds: float = 60.0
    memory_limit_mb: int = 512


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int | None  # None when killed (timeout or cancel)
    stdout: str
    stderr: str
    timed_out: bool = False
    cancelled: bool = False


class RunAdapter(ABC):
    @abstractmethod
    def run_script(self, spec: ScriptSpec, *, cancel: threading.Event) -> ScriptResult:
        """Run the code to completion, or kill it when `spec.timeout_seconds` passes or `cancel`
        is set. Kills the whole process tree or container; never leaves it running."""
