"""Cancel signals over Redis pub-sub (tier 2+): a cancel in a web process reaches the worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings

from infra.pubsub.base import PubSub

logger = logging.getLogger("infra")

# Short socket timeouts: a cancel click must never hang a web request on a dead Redis.
SOCKET_TIMEOUT_SECONDS = 2.0
# How long the listener blocks for a message before checking whether it should stop.
POLL_SECONDS = 0.5
RECONNECT_DELAY_SECONDS = 1.0


class RedisPubSub(PubSub):
    """One channel per deployment (`<REDIS_PREFIX>:cancel`); the message is the run id.

    The listener is one daemon thread per process, started by the first `subscribe_cancel`,
    which reconnects by itself when Redis goes away. A cancel published while Redis is down is
    lost here; the engine also reads `Run.cancel_requested_at` from the database, so the run
    still stops at its next heartbeat.
    """

    def __init__(self, url: str | None = None, prefix: str | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self.channel = f"{prefix or settings.REDIS_PREFIX}:cancel"
        self._callbacks: list[Callable[[int], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._subscribed = threading.Event()

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
        )

    def publish_cancel(self, run_id: int) -> None:
        try:
            client = self._client()
            try:
                client.publish(self.channel, str(int(run_id)))
            finally:
                client.close()
        except redis.RedisError as exc:
            logger.warning("Could not publish the cancel of run %s: %s", run_id, exc)

    def subscribe_cancel(self, callback: Callable[[int], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._listen_forever, name="appstrate-cancel-listener", daemon=True
                )
                self._thread.start()

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        """Block until the listener is subscribed (tests and startup use it)."""
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_SECONDS + SOCKET_TIMEOUT_SECONDS)

    def _listen_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen_once()
            except (redis.RedisError, OSError) as exc:
                self._subscribed.clear()
                logger.warning("Cancel listener lost Redis (%s); reconnecting", exc)
                self._stopping.wait(RECONNECT_DELAY_SECONDS)

    def _listen_once(self) -> None:
        client = self._client()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if not message:
                    continue
                if message["type"] == "subscribe":
                    # Redis confirmed: every cancel published from now on reaches us.
                    self._subscribed.set()
                elif message["type"] == "message":
                    self._deliver(message["data"])
        finally:
            pubsub.close()
            client.close()

    def _deliver(self, data: bytes) -> None:
        try:
            run_id = int(data)
        except (TypeError, ValueError):
            logger.warning("Ignoring a malformed cancel message: %r", data[:100])
            return
        for callback in list(self._callbacks):
            try:
                callback(run_id)
            except Exception:
                logger.exception("A cancel callback failed for run %s", run_id)
