"""The node-type contract: the engine's extension point."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar


class StepError(Exception):
    """A step failed. `retryable=False` stops retries whatever the policy says."""

    kind: ClassVar[str] = "error"  # matched against a retry policy's `retry_on`

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StepTimeout(StepError):
    kind = "timeout"


@dataclass
class StepContext:
    """What a node sees while it executes one attempt of one step."""

    run_id: int
    step_id: str
    attempt: int
    config: dict[str, Any]  # expressions already rendered
    workflow_policies: dict[str, Any]
    timeout_seconds: float | None
    cancel: threading.Event  # set when the run is cancelled or times out: stop promptly
    log: Any = None  # callable(str) that appends to the step's logs (masked, streamed)
    secrets: set[str] = field(default_factory=set)  # values to mask; nodes add resolved ones
    # The workflow's slug: credentials are resolved for it (which workflows may use them).
    # When the engine leaves it empty, nodes look it up from run_id.
    workflow_slug: str = ""


class NodeType:
    """A kind of step. Subclasses set `name` and implement `validate_config` and `execute`."""

    name: ClassVar[str]
    # Whether an attempt may safely be repeated after a crash (DESIGN.md section 3).
    idempotent_by_default: ClassVar[bool] = False

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Return (field, message) pairs for everything wrong with `config`; empty when valid."""
        return []

    def is_idempotent(self, config: dict[str, Any]) -> bool:
        return self.idempotent_by_default

    def execute(self, ctx: StepContext) -> Any:
        """Do the work and return the step's JSON output. Raise `StepError` to fail the attempt."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")
