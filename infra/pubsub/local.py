"""Cancel signals inside one process (tiers 0 and 1: the executor lives in the serving process)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from infra.pubsub.base import PubSub

logger = logging.getLogger("infra")


class LocalPubSub(PubSub):
    """Delivers a cancel to the callbacks of this process, synchronously in the caller's thread.

    Callbacks are quick by contract (they set an event), so the cancelling request never waits
    on a step. There is nothing to reach beyond this process at tiers 0 and 1.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[int], None]] = []
        self._lock = threading.Lock()

    def publish_cancel(self, run_id: int) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(int(run_id))
            except Exception:
                logger.exception("A cancel callback failed for run %s", run_id)

    def subscribe_cancel(self, callback: Callable[[int], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
