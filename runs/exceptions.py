"""Errors of the runs domain. Callers translate them: a view into a 4xx, a command into CommandError."""

from __future__ import annotations


class RunError(Exception):
    """Base class of everything the run services refuse."""


class InvalidInput(RunError):
    """The run input does not match the workflow's input schema (or is not a JSON object)."""

    def __init__(self, message: str, *, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"field": "input", "message": message}]


class WorkflowUnavailable(RunError):
    """The workflow is disabled, retired or has no version yet: it accepts no new runs."""


class RunNotCancellable(RunError):
    """The run is already final."""


class RunNotRetryable(RunError):
    """Retry and resume need a final run (and resume one that did not succeed)."""
