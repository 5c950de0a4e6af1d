"""The append-only event log of a run, and its publication to the live console.

Sequence numbers come from `Run.last_event_seq`, bumped by one conditional UPDATE in the same
transaction as the insert: the row lock (PostgreSQL) or the IMMEDIATE write transaction
(SQLite) serialises writers, so a web process cancelling while an executor writes never
produces a gap or a duplicate, and a rolled-back transaction gives its numbers back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from credentials.masking import mask
from runs.models import Run, RunEvent

logger = logging.getLogger("runs")

RUNS_GROUP = "runs"
# The payload of one event is capped so a chatty step cannot bloat the log; logs are truncated.
MAX_LOG_CHARS = 16_000
# The publisher waits this long after the first event so a burst goes out as one batch.
BATCH_SECONDS = 0.005


@dataclass(frozen=True)
class Reservation:
    """What bumping the counter told us about the run, for free, in the same statement."""

    last_seq: int
    status: str
    owner: str
    step_executions: int


def reserve_seqs(
    run_id: int, count: int, *, step_executions: int = 0, owner: str | None = None
) -> Reservation | None:
    """Take `count` sequence numbers (and count step attempts); call inside a transaction.

    Returns None when the run does not exist, or (with `owner`) is no longer owned by that
    executor. The RETURNING clause hands back the status so the executor learns of a cancel
    without another query.
    """
    sql = (
        f"UPDATE {Run._meta.db_table} SET last_event_seq = last_event_seq + %s, "
        "step_executions = step_executions + %s WHERE id = %s"
    )
    params: list[Any] = [count, step_executions, run_id]
    if owner is not None:
        sql += " AND owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING last_event_seq, status, owner, step_executions", params)
        row = cursor.fetchone()
    return Reservation(*row) if row else None


def channel_messages(
    run_id: int, first_seq: int, events: Sequence[tuple[str, dict[str, Any]]], created: datetime
) -> list[dict[str, Any]]:
    """The channel-layer messages for events numbered from `first_seq` (docs/architecture.md)."""
    created_at = created.isoformat()
    return [
        {
            "type": "run.event",
            "run_id": run_id,
            "seq": first_seq + i,
            "event": type_,
            "payload": payload,
            "created_at": created_at,
        }
        for i, (type_, payload) in enumerate(events)
    ]


def insert_events(
    run_id: int, reservation: Reservation, events: Sequence[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Insert events numbered from a reservation; publish them once the transaction commits.

    Returns their channel messages. Plain SQL and no model instances: this runs for every step
    of every run.
    """
    first = reservation.last_seq - len(events) + 1
    now = timezone.now()
    messages = channel_messages(run_id, first, events, now)
    prep_payload = _PAYLOAD_FIELD.get_db_prep_save
    created = _CREATED_FIELD.get_db_prep_save(now, connection)
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (run_id, seq, type, payload, created_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (run_id, m["seq"], m["event"], prep_payload(m["payload"], connection), created)
                for m in messages
            ],
        )
    transaction.on_commit(partial(_publisher().put, messages))
    return messages


_PAYLOAD_FIELD = RunEvent._meta.get_field("payload")
_CREATED_FIELD = RunEvent._meta.get_field("created_at")


def append_events(
    run: Run | int,
    events: Sequence[tuple[str, dict[str, Any] | None]],
    *,
    secrets: Iterable[str] = (),
) -> list[RunEvent]:
    """Append events to a run's log (masked with `secrets`); published after commit."""
    run_id = run if isinstance(run, int) else run.pk
    secrets = list(secrets)
    masked = [(type_, mask(payload or {}, secrets)) for type_, payload in events]
    from runs.engine.db import write_transaction

    with write_transaction():
        reservation = reserve_seqs(run_id, len(masked))
        if reservation is None:
            raise Run.DoesNotExist(f"Run {run_id} does not exist")
        messages = insert_events(run_id, reservation, masked)
    return [
        RunEvent(
            run_id=run_id,
            seq=m["seq"],
            type=m["event"],
            payload=m["payload"],
            created_at=datetime.fromisoformat(m["created_at"]),
        )
        for m in messages
    ]


def append_event(
    run: Run | int, type: str, payload: dict[str, Any] | None = None, *, secrets: Iterable[str] = ()
) -> RunEvent:
    """Append one event to a run's log; see `append_events`."""
    return append_events(run, [(type, payload)], secrets=secrets)[0]


def channel_message(event: RunEvent) -> dict[str, Any]:
    """The channel message of docs/architecture.md (Realtime)."""
    return {
        "type": "run.event",
        "run_id": event.run_id,
        "seq": event.seq,
        "event": event.type,
        "payload": event.payload,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


def publish_messages(messages: list[dict[str, Any]]) -> None:
    """Hand channel messages of committed events to this process's publisher thread."""
    _publisher().put(messages)


def publish_events(events: Sequence[RunEvent]) -> None:
    """Hand committed events to this process's publisher thread; never blocks the caller."""
    _publisher().put([channel_message(event) for event in events])


def flush_published(timeout: float = 5.0) -> bool:
    """Wait until every event handed over so far reached the channel layer (tests, commands)."""
    return _publisher().flush(timeout)


class _Publisher:
    """One daemon thread per process with its own event loop, sending batches to the groups.

    Publishing from the executor's hot path through `async_to_sync` costs about 1 ms a call (a
    fresh loop in a fresh thread each time) and, with channels_redis, a connection per loop.
    Here the loop lives as long as the thread, batches drain in order, and no caller ever
    publishes from inside an event loop.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[dict] | threading.Event] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="appstrate-events", daemon=True)
        self._thread.start()

    def put(self, messages: list[dict]) -> None:
        self._queue.put(messages)

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        from channels.layers import get_channel_layer

        loop = asyncio.new_event_loop()
        while True:
            batch: list[dict] = []
            markers: list[threading.Event] = []
            item = self._queue.get()
            # Gather what arrives meanwhile: one loop turn sends a whole burst of steps.
            time.sleep(BATCH_SECONDS)
            while True:
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.extend(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    loop.run_until_complete(_send(get_channel_layer(), batch))
                except Exception:
                    # Live updates are best effort: the log in the database is the truth, and
                    # consumers fill gaps from it.
                    logger.exception("Publishing %d run events failed", len(batch))
            for marker in markers:
                marker.set()


async def _send(layer: Any, messages: list[dict]) -> None:
    """One group send per run and batch (a `run.events` bundle when there are several): each
    send is a Redis publish at tier 2, and a run's steps produce bursts of events."""
    if layer is None:
        return
    by_run: dict[int, list[dict]] = {}
    for message in messages:
        by_run.setdefault(message["run_id"], []).append(message)
    for run_id, batch in by_run.items():
        await layer.group_send(f"run-{run_id}", bundle(run_id, batch))
        # The runs list shows run status changes only.
        statuses = [message for message in batch if message["event"].startswith("run.")]
        if statuses:
            await layer.group_send(RUNS_GROUP, bundle(run_id, statuses))


def bundle(run_id: int, messages: list[dict]) -> dict:
    """One channel message for a run's events, in order: the message itself when alone."""
    if len(messages) == 1:
        return messages[0]
    return {"type": "run.events", "run_id": run_id, "events": messages}


_publisher_lock = threading.Lock()
_publisher_instance: _Publisher | None = None
_publisher_pid: int | None = None


def _publisher() -> _Publisher:
    # One per process: a forked Celery child must not share its parent's (dead) thread.
    import os

    global _publisher_instance, _publisher_pid
    with _publisher_lock:
        if _publisher_instance is None or _publisher_pid != os.getpid():
            _publisher_instance = _Publisher()
            _publisher_pid = os.getpid()
        return _publisher_instance
