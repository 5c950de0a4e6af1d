import asyncio
import threading
import time

from infra.realtime.inmemory import ThreadSafeInMemoryChannelLayer

IDLE_TIMER_SECONDS = 3.0


async def test_it_wakes_a_waiting_consumer_when_another_thread_publishes():
    layer = ThreadSafeInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("run-1", channel)
    waiting = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.05)  # the receiver is now parked on its queue
    # An executor thread publishes from its own event loop, as runs.events does.
    publisher = threading.Thread(
        target=asyncio.run, args=(layer.group_send("run-1", {"type": "run.event", "seq": 1}),)
    )
    started = time.monotonic()
    publisher.start()
    message = await asyncio.wait_for(waiting, timeout=IDLE_TIMER_SECONDS)
    publisher.join()
    assert message == {"type": "run.event", "seq": 1}
    # The loop's only timer is the 3 s timeout: delivering before it means the publisher woke
    # the loop (Channels' own in-memory layer leaves it asleep until that timer fires).
    assert time.monotonic() - started < IDLE_TIMER_SECONDS / 2


async def test_it_delivers_within_one_loop_as_before():
    layer = ThreadSafeInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("runs", channel)
    await layer.group_send("runs", {"type": "run.event", "seq": 7})
    assert await layer.receive(channel) == {"type": "run.event", "seq": 7}
    await layer.group_discard("runs", channel)
    await layer.group_send("runs", {"type": "run.event", "seq": 8})
    assert channel not in layer.channels
