"""The executor port: where queued runs get executed."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Executor(ABC):
    """Hands queued runs to something that executes them.

    Every implementation ends up calling the same service, `runs.services.execute_run(run_id)`;
    they differ only in where that call happens (threads in the serving process, Celery workers).
    """

    @abstractmethod
    def submit(self, run_id: int) -> None:
        """Ask for the run to be executed soon. Call it after the run's row is committed.

        Never raises because a broker is down: the run stays queued in the database and the
        periodic sweep dispatches it again.
        """

    def start(self) -> None:
        """Start background machinery in this process (threads). A no-op where there is none."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop what `start()` started, waiting up to `timeout` seconds."""
