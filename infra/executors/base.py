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

    #: Whether runs reach this executor as broker messages; `start_run` then stamps
    #: `Run.dispatched_at` in the row it inserts (see `submit_new`).
    dispatches_messages = False

    def submit_new(self, run_id: int, *, definition: dict, dispatched_at: object) -> None:
        """Submit a run `start_run` just created, with its version's definition (no query for
        it) and, where `dispatches_messages`, the `dispatched_at` it was inserted with."""
        self.submit(run_id)

    def start(self) -> None:
        """Start background machinery in this process (threads). A no-op where there is none."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop what `start()` started, waiting up to `timeout` seconds."""
