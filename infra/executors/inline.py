"""The tier 0/1 executor: threads inside the serving process claim queued runs from the database.

`submit()` wakes an idle thread at once; between submissions each thread looks for queued runs
(in created order) and orphaned ones, so runs queued or interrupted while the process was down
are picked up when it starts again. A process that never calls `start()` (migrate, shell, other
commands) leaves submitted runs queued for the serving process.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

from infra.executors.base import Executor

logger = logging.getLogger("infra")

# How often an idle thread looks in the database for queued or orphaned runs.
IDLE_POLL_SECONDS = 1.0
# How often the SQLite log is checkpointed while runs write to it, and while nothing does.
CHECKPOINT_BUSY_SECONDS = 0.05
CHECKPOINT_IDLE_SECONDS = 1.0


class InlineExecutor(Executor):
    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = concurrency or settings.EXECUTOR_CONCURRENCY
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.executor_id = ""

    @property
    def started(self) -> bool:
        return bool(self._threads) and not self._stopping.is_set()

    def submit(self, run_id: int) -> None:
        if self.started:
            self._queue.put(int(run_id))
        # Not started (a one-off command): the run stays queued in the database, where the
        # serving process finds it.

    def start(self) -> None:
        from runs.engine.claims import process_executor_id

        with self._lock:
            if self.started:
                return
            self._stopping.clear()
            self.executor_id = process_executor_id()
            self._threads = [
                threading.Thread(target=self._work, name=f"appstrate-executor-{i}", daemon=True)
                for i in range(self.concurrency)
            ]
            if connection.vendor == "sqlite":
                self._threads.append(
                    threading.Thread(
                        target=self._checkpoint, name="appstrate-sqlite-checkpoint", daemon=True
                    )
                )
            for thread in self._threads:
                thread.start()
        logger.info(
            "In-process executor %s started with %d threads", self.executor_id, self.concurrency
        )

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
            self._stopping.set()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)

    def _work(self) -> None:
        try:
            self._sweep()  # what was queued or interrupted while the process was down
            while not self._stopping.is_set():
                try:
                    run_id = self._queue.get(timeout=IDLE_POLL_SECONDS)
                except queue.Empty:
                    self._sweep()
                    continue
                if run_id is not None:
                    self._execute(run_id)
        finally:
            # A stopped executor holds no database session (PostgreSQL would keep it open).
            connection.close()

    def _checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database from this thread, often: otherwise
        the commit that crosses 1000 pages of log does it, holding the one writer lock that
        every run's next step waits on (measured: about 7 % more runs per second)."""
        pause, last_log = CHECKPOINT_BUSY_SECONDS, None
        while not self._stopping.wait(pause):
            try:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    _busy, log_pages, _copied = cursor.fetchone()
            except Exception:
                logger.exception("Checkpointing the SQLite log failed")
                connection.close()
                log_pages = None
            # The log did not change since the last look: nothing writes, look less often.
            idle = log_pages == last_log
            pause = CHECKPOINT_IDLE_SECONDS if idle else CHECKPOINT_BUSY_SECONDS
            last_log = log_pages
        connection.close()

    def _sweep(self) -> None:
        from runs.engine.claims import claimable_run_ids

        try:
            close_old_connections()
            candidates = claimable_run_ids()
        except Exception:
            logger.exception("Looking for queued runs failed")
            return
        for run_id in candidates:
            if self._stopping.is_set():
                return
            self._execute(run_id)

    def _execute(self, run_id: int) -> None:
        from runs.services import execute_run

        try:
            execute_run(run_id, executor_id=self.executor_id)
        except Exception:
            logger.exception("Executing run %s failed", run_id)
            connection.close()  # maybe broken; the next run opens a fresh one


# Programs that serve the ASGI application; `manage.py runserver` is recognised by its argument.
SERVER_PROGRAMS = ("daphne", "uvicorn", "hypercorn", "gunicorn")


def is_serving_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves requests (and so hosts the tier 0/1 executor).

    `migrate`, `shell`, tests and other one-off commands import the ASGI module too (or not at
    all), but must never start executing runs behind the operator's back.
    """
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    program = Path(argv[0])
    names = {program.name, program.parent.name}
    return argv[1:2] == ["runserver"] or any(name in SERVER_PROGRAMS for name in names)


def autostart() -> bool:
    """Start the in-process executor when this is the serving process of tier 0 or 1."""
    from infra.registry import get_executor, get_mode

    if get_mode().executor != "inline" or not is_serving_process():
        return False
    get_executor().start()
    # Schedules fire from the serving process too at tiers 0 and 1 (every fire is claimed in
    # the database, so several serving processes still fire each one once).
    from workflows.scheduler import start_in_process

    start_in_process()
    return True
