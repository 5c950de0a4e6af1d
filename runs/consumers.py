"""WebSocket consumers for the console: one run's event stream, and status changes of all runs.

Authentication is the Django session (AuthMiddlewareStack in appstrate/asgi.py); permissions are
the admin's. No business logic here: reads go through `database_sync_to_async`, cancels through
`runs.services.cancel_run`.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from credentials.masking import mask_remembered
from runs import services
from runs.exceptions import RunNotCancellable
from runs.models import Run, RunEvent

logger = logging.getLogger("runs")

# Close codes in the 4000 range are ours (RFC 6455 leaves them to applications).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
RUNS_GROUP = "runs"
MAX_CLIENT_MESSAGE_BYTES = 4096
BACKLOG_PAGE = 500


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def can_view_runs(user: Any) -> bool:
    """The admin lets a user see runs with either the view or the change permission."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.has_perm("runs.view_run") or user.has_perm("runs.change_run"))
    )


def event_frame(event: RunEvent) -> dict[str, Any]:
    return {
        "kind": "event",
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "payload": mask_remembered(event.payload),
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "event",
        "run_id": message.get("run_id"),
        "seq": message.get("seq"),
        "type": message.get("event"),
        # Payloads are masked by the engine; this catches what this process knows on top.
        "payload": mask_remembered(message.get("payload") or {}),
        "created_at": message.get("created_at"),
    }


class RunEventsConsumer(AsyncWebsocketConsumer):
    """`/ws/runs/<run_id>/?after=N`: missed events from the database, then the live stream.

    Subscribing to the group happens before the backlog is read, so an event committed after
    the read is published after the subscription and arrives live; anything seen twice is
    dropped by `seq`. Channels dispatches one message at a time per consumer, so live events
    wait in the channel while the backlog is sent.
    """

    async def connect(self) -> None:
        self.last_seq = 0
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.user = self.scope.get("user")
        after = self._after_from_query()
        if after is None:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        if not (self.user and self.user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(can_view_runs)(self.user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if not await database_sync_to_async(Run.objects.filter(pk=self.run_id).exists)():
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.last_seq = after
        await self._send_from_database(upto=None)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_events(self, message: dict[str, Any]) -> None:
        """A bundle of this run's events, in order (runs.events.bundle)."""
        for event in _bundled(message):
            await self.run_event(event)

    async def run_event(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if not isinstance(seq, int) or seq <= self.last_seq:
            return  # already sent (from the backlog or a duplicate publish)
        if seq > self.last_seq + 1:
            # Publishing happens after commit in whichever thread appended, so two events can
            # overtake each other; the earlier ones are committed, read them in order.
            await self._send_from_database(upto=seq - 1)
        await self._send_json(message_frame(message))
        self.last_seq = seq

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        request = _parse_client_message(text_data)
        if request is None:
            await self._send_json(
                {"kind": "error", "message": 'Send JSON like {"action": "cancel"}.'}
            )
            return
        if request.get("action") == "cancel":
            await self._send_json(await database_sync_to_async(self._cancel)())
        else:
            await self._send_json({"kind": "error", "message": "Unknown action."})

    def _cancel(self) -> dict[str, Any]:
        if not self.user.has_perm("runs.cancel_run"):
            return {"kind": "error", "message": "You do not have permission to cancel runs."}
        run = Run.objects.filter(pk=self.run_id).first()
        if run is None:
            return {"kind": "error", "message": "This run no longer exists."}
        try:
            services.cancel_run(run, by=self.user)
        except RunNotCancellable as exc:
            return {"kind": "error", "message": str(exc) or "This run has already finished."}
        return {"kind": "cancel", "ok": True}

    def _after_from_query(self) -> int | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        raw = (query.get("after") or ["0"])[-1]
        if not raw.isdigit() or len(raw) > 12:
            return None
        return int(raw)

    async def _send_from_database(self, *, upto: int | None) -> None:
        while True:  # in pages, so a run with a long history is never loaded at once
            events = await database_sync_to_async(self._read_events)(self.last_seq, upto)
            for event in events:
                await self._send_json(event_frame(event))
                self.last_seq = event.seq
            if len(events) < BACKLOG_PAGE:
                return

    def _read_events(self, after: int, upto: int | None) -> list[RunEvent]:
        events = RunEvent.objects.filter(run_id=self.run_id, seq__gt=after).order_by("seq")
        if upto is not None:
            events = events.filter(seq__lte=upto)
        return list(events[:BACKLOG_PAGE])

    async def _send_json(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, default=str))


class RunsConsumer(AsyncWebsocketConsumer):
    """`/ws/runs/`: run-level events (`run.*`) of every run, for the runs list."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not (user and user.is_authenticated):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(can_view_runs)(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = RUNS_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_events(self, message: dict[str, Any]) -> None:
        for event in _bundled(message):
            await self.run_event(event)

    async def run_event(self, message: dict[str, Any]) -> None:
        if str(message.get("event", "")).startswith("run."):
            await self.send(text_data=json.dumps(message_frame(message), default=str))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(
            text_data=json.dumps({"kind": "error", "message": "This socket only streams."})
        )


def _bundled(message: dict[str, Any]) -> list[dict[str, Any]]:
    events = message.get("events")
    return (
        [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []
    )


def _parse_client_message(text: str | None) -> dict[str, Any] | None:
    if not text or len(text) > MAX_CLIENT_MESSAGE_BYTES:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
