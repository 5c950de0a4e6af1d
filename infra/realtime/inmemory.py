"""The tier 0/1 channel layer: Channels' in-memory layer, safe to send to from other threads.

At tiers 0 and 1 the engine runs in executor threads of the serving process and publishes from
its own event loop, while consumers wait on daphne's loop. Channels' `InMemoryChannelLayer`
puts straight into an `asyncio.Queue` owned by the receiving loop; from another thread that
neither is thread-safe nor wakes the loop, so events sat for up to a second (measured with
bench/websocket.py: p50 540 ms). Here a send from a foreign loop is handed to the receiving
loop with `run_coroutine_threadsafe`, which wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SEND_TIMEOUT_SECONDS = 2.0


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiver_loops: dict[str, asyncio.AbstractEventLoop] = {}

    async def receive(self, channel: str) -> dict:
        self._receiver_loops[channel] = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        target = self._receiver_loops.get(channel)
        if target is None or not target.is_running() or target is asyncio.get_running_loop():
            await super().send(channel, message)
            return
        future = asyncio.run_coroutine_threadsafe(
            InMemoryChannelLayer.send(self, channel, message), target
        )
        # Bounded: a receiving loop that stops meanwhile must not hang the publisher.
        await asyncio.wait_for(asyncio.wrap_future(future), timeout=SEND_TIMEOUT_SECONDS)

    async def group_send(self, group: str, message: dict) -> None:
        # As the parent, but over a copy: other threads may join or leave the group meanwhile.
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        if not any(channel in members for members in self.groups.values()):
            self._receiver_loops.pop(channel, None)

    async def flush(self) -> None:
        await super().flush()
        self._receiver_loops = {}
