"""The scheduler loop: fires schedules and sweeps runs, in a thread or its own process.

At tiers 0 and 1 the serving process runs it as a thread next to the in-process executor; at
tier 2+ `manage.py runscheduler` runs it (as many as you like: every fire is claimed in the
database, so two schedulers never start the same fire twice), and every Celery worker's main
process runs one that only sweeps (WORKER_SWEEP_SECONDS).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from runs.sweeps import sweep_runs
from workflows.schedules import fire_due_schedules

logger = logging.getLogger("workflows")


class Scheduler:
    def __init__(
        self,
        *,
        tick_seconds: float | None = None,
        sweep_seconds: float | None = None,
        fire_schedules: bool = True,
    ):
        self.tick_seconds = tick_seconds or settings.SCHEDULER_TICK_SECONDS
        self.sweep_seconds = sweep_seconds or settings.SWEEP_SECONDS
        self.fire_schedules = fire_schedules
        self.stopping = threading.Event()
        self._next_sweep = 0.0
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Fire what is due and, when it is time, sweep; returns the runs started by schedules."""
        # A long-lived loop must notice a database that restarted meanwhile.
        close_old_connections()
        try:
            started = fire_due_schedules() if self.fire_schedules else 0
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.sweep_seconds
                sweep_runs()
            return started
        except Exception:
            # The database may be briefly down: log and try again at the next tick.
            logger.exception("Scheduler tick failed")
            return 0
        finally:
            close_old_connections()

    def run_forever(self) -> None:
        while not self.stopping.is_set():
            self.tick()
            self.stopping.wait(self.tick_seconds)

    def start(self) -> None:
        """Run in a daemon thread of this process (tiers 0 and 1)."""
        name = "appstrate-scheduler" if self.fire_schedules else "appstrate-sweeper"
        self._thread = threading.Thread(target=self.run_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)


_in_process: Scheduler | None = None
_in_process_lock = threading.Lock()


def start_in_process() -> Scheduler:
    """Start this process's scheduler thread once (the tier 0/1 serving process calls it)."""
    global _in_process
    with _in_process_lock:
        if _in_process is None:
            _in_process = Scheduler()
            _in_process.start()
            logger.info("In-process scheduler started, a tick every %ss", _in_process.tick_seconds)
    return _in_process
