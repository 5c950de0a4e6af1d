"""What reaches a run while it executes in this process: cancel signals and heartbeats.

Each executing run registers a handle. Cancels arrive through the pub-sub port (in-process at
tiers 0 and 1, Redis at tier 2+); one heartbeat thread per process stamps every registered
run and, as a fallback for a lost message, notices runs that were finished elsewhere.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from runs.models import Run

logger = logging.getLogger("runs")


@dataclass
class RunHandle:
    run_id: int
    executor_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    wake: Callable[[], None] = lambda: None

    def request_cancel(self) -> None:
        self.cancel.set()
        self.wake()


_lock = threading.Lock()
_active: dict[int, RunHandle] = {}
_started_pid: int | None = None
# Set when the last run of this process ends: the heartbeat thread then gives its database
# connection back at once instead of at its next beat.
_idle = threading.Event()


def register(handle: RunHandle) -> None:
    _ensure_started()
    with _lock:
        _active[handle.run_id] = handle


def unregister(run_id: int) -> None:
    with _lock:
        _active.pop(run_id, None)
        if not _active:
            _idle.set()


def deliver_cancel(run_id: int) -> None:
    """Pub-sub callback: quick, only sets the run's event and wakes its loop."""
    with _lock:
        handle = _active.get(run_id)
    if handle is not None:
        handle.request_cancel()


def _ensure_started() -> None:
    """Subscribe to cancels and start the heartbeat thread, once per process (and per fork)."""
    global _started_pid
    with _lock:
        if _started_pid == os.getpid():
            return
        _started_pid = os.getpid()
        _active.clear()
    from infra.registry import get_pubsub

    get_pubsub().subscribe_cancel(deliver_cancel)
    threading.Thread(target=_heartbeat_forever, name="appstrate-heartbeat", daemon=True).start()


def _heartbeat_forever() -> None:
    while True:
        _idle.wait(max(float(settings.HEARTBEAT_SECONDS), 0.05))
        _idle.clear()
        try:
            heartbeat_once()
        except Exception:
            logger.exception("Heartbeat failed")
            close_old_connections()


def heartbeat_once() -> None:
    with _lock:
        handles = list(_active.values())
    if not handles:
        connection.close()  # an idle process holds no database connection
        return
    now = timezone.now()
    by_owner: dict[str, list[int]] = {}
    for handle in handles:
        by_owner.setdefault(handle.executor_id, []).append(handle.run_id)
    for owner, run_ids in by_owner.items():
        Run.objects.filter(pk__in=run_ids, owner=owner, status=Run.Status.RUNNING).update(
            heartbeat_at=now
        )
    # A cancel message can be lost (Redis restarting); the database cannot. A run finished
    # elsewhere, or taken over by another executor, stops here too.
    owners = {handle.run_id: handle.executor_id for handle in handles}
    rows = Run.objects.filter(pk__in=list(owners)).values_list(
        "pk", "status", "owner", "cancel_requested_at"
    )
    for run_id, status, owner, cancel_requested_at in rows:
        if status != Run.Status.RUNNING or owner != owners[run_id] or cancel_requested_at:
            deliver_cancel(run_id)
