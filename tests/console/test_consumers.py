import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from appstrate.asgi import application
from tests.console.conftest import record_event

pytestmark = pytest.mark.django_db(transaction=True)


def session_headers(user=None):
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        headers.append((b"cookie", cookie.encode()))
    return headers


async def connect(path, user=None):
    headers = await database_sync_to_async(session_headers)(user)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def receive_events(communicator, count):
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(count)]
    return frames


async def test_it_refuses_an_anonymous_client(pipeline_run):
    _communicator, connected, code = await connect(f"/ws/runs/{pipeline_run.pk}/")
    # It should close with our "unauthenticated" code before accepting.
    assert not connected
    assert code == 4401


async def test_it_refuses_a_user_without_view_permission(pipeline_run, charlie):
    _communicator, connected, code = await connect(f"/ws/runs/{pipeline_run.pk}/", charlie)
    assert not connected
    assert code == 4403
    _communicator, connected, code = await connect("/ws/runs/", charlie)
    assert not connected
    assert code == 4403


async def test_it_refuses_a_foreign_origin(pipeline_run, alice):
    headers = await database_sync_to_async(session_headers)(alice)
    headers[0] = (b"origin", b"http://evil.example")
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{pipeline_run.pk}/", headers=headers
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


@pytest.mark.parametrize(
    "run_id", ["999999", "99999999999999999999999"], ids=["unknown", "absurdly-large"]
)
async def test_it_answers_not_found_for_a_run_that_does_not_exist(alice, run_id):
    _communicator, connected, code = await connect(f"/ws/runs/{run_id}/", alice)
    assert not connected
    assert code == 4404


async def test_it_rejects_a_malformed_cursor(pipeline_run, alice):
    _communicator, connected, code = await connect(f"/ws/runs/{pipeline_run.pk}/?after=-3", alice)
    assert not connected
    assert code == 4400


async def test_it_replays_history_then_streams_live_events_in_order(pipeline_run, bob):
    for n in range(3):
        await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": n})
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    for n in range(3, 6):
        await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": n})
    frames = await receive_events(communicator, 6)
    # It should deliver 1..6 exactly once, in order, backlog first then live.
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f["payload"]["line"] for f in frames] == [0, 1, 2, 3, 4, 5]
    assert frames[0]["type"] == "step.log"
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_it_sends_exactly_the_missed_events_on_reconnect(pipeline_run, bob):
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    for n in range(4):
        await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": n})
    seen = await receive_events(communicator, 4)
    await communicator.disconnect()
    last = seen[-1]["seq"]
    # While the client is away, three more events happen.
    for n in range(4, 7):
        await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": n})
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/?after={last}", bob)
    assert connected
    await database_sync_to_async(record_event)(pipeline_run, "run.succeeded", {})
    frames = await receive_events(communicator, 4)
    assert [f["seq"] for f in frames] == [5, 6, 7, 8]
    assert frames[-1]["type"] == "run.succeeded"
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_it_fills_a_gap_in_the_live_stream_from_the_database(pipeline_run, bob):
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    # Event 1 is committed but its publish is late; event 2 is published first.
    first = await database_sync_to_async(record_event)(
        pipeline_run, "step.started", {"step": "fetch"}, publish=False
    )
    await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": "x"})
    from tests.console.conftest import publish_event

    await database_sync_to_async(publish_event)(first)  # the late duplicate
    frames = await receive_events(communicator, 2)
    assert [f["seq"] for f in frames] == [1, 2]
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_it_streams_only_run_level_events_on_the_runs_socket(pipeline_run, bob):
    communicator, connected, _ = await connect("/ws/runs/", bob)
    assert connected
    await database_sync_to_async(record_event)(pipeline_run, "step.log", {"line": "noise"})
    await database_sync_to_async(record_event)(pipeline_run, "run.started", {})
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["type"] == "run.started"
    assert frame["run_id"] == pipeline_run.pk
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_it_refuses_a_cancel_from_a_viewer(pipeline_run, bob):
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    await communicator.send_to(text_data=json.dumps({"action": "cancel"}))
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["kind"] == "error"
    assert "permission" in frame["message"]
    await pipeline_run.arefresh_from_db()
    assert pipeline_run.status == "queued"
    assert pipeline_run.cancel_requested_at is None
    await communicator.disconnect()


async def test_it_answers_garbage_with_an_error_frame(pipeline_run, bob):
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    for garbage in ["not json", "[1, 2]", "x" * 10000, json.dumps({"action": "explode"})]:
        await communicator.send_to(text_data=garbage)
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["kind"] == "error"
    await communicator.disconnect()


async def test_it_streams_events_the_engine_appends_from_another_thread(pipeline_run, bob):
    from runs.events import append_event, flush_published

    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected

    def append_three():
        for n in range(3):
            append_event(pipeline_run, "step.log", {"step": "fetch", "text": f"line {n}"})
        assert flush_published()

    await database_sync_to_async(append_three)()
    frames = await receive_events(communicator, 3)
    assert [f["payload"]["text"] for f in frames] == ["line 0", "line 1", "line 2"]
    await communicator.disconnect()


async def test_it_cancels_over_the_socket_for_an_operator(pipeline_run, alice):
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", alice)
    assert connected
    await communicator.send_to(text_data=json.dumps({"action": "cancel"}))
    replies = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    # The cancel's own event reaches the socket too, whichever comes first.
    assert {"kind": "cancel", "ok": True} in replies
    await pipeline_run.arefresh_from_db()
    assert pipeline_run.status == "cancelled"
    await communicator.send_to(text_data=json.dumps({"action": "cancel"}))
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["kind"] == "error"
    await communicator.disconnect()


async def test_it_replays_a_long_history_in_pages_without_gaps(pipeline_run, bob, monkeypatch):
    from runs import consumers

    monkeypatch.setattr(consumers, "BACKLOG_PAGE", 4)
    for n in range(10):
        await database_sync_to_async(record_event)(
            pipeline_run, "step.log", {"line": n}, publish=False
        )
    communicator, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/?after=1", bob)
    assert connected
    frames = await receive_events(communicator, 9)
    assert [f["seq"] for f in frames] == list(range(2, 11))
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_it_unpacks_a_bundle_of_events_in_order_on_both_sockets(pipeline_run, bob):
    from channels.layers import get_channel_layer

    from runs.events import bundle, channel_message

    run_socket, connected, _ = await connect(f"/ws/runs/{pipeline_run.pk}/", bob)
    assert connected
    runs_socket, connected, _ = await connect("/ws/runs/", bob)
    assert connected
    events = [
        await database_sync_to_async(record_event)(pipeline_run, type_, {}, publish=False)
        for type_ in ("run.started", "step.started", "step.succeeded")
    ]
    layer = get_channel_layer()
    messages = [channel_message(event) for event in events]
    await layer.group_send(f"run-{pipeline_run.pk}", bundle(pipeline_run.pk, messages))
    await layer.group_send("runs", bundle(pipeline_run.pk, messages))
    frames = await receive_events(run_socket, 3)
    assert [(f["seq"], f["type"]) for f in frames] == [
        (1, "run.started"),
        (2, "step.started"),
        (3, "step.succeeded"),
    ]
    frame = await runs_socket.receive_json_from(timeout=5)
    assert (frame["seq"], frame["type"]) == (1, "run.started")
    assert await run_socket.receive_nothing(timeout=0.2)
    assert await runs_socket.receive_nothing(timeout=0.2)
    # A malformed bundle is ignored, not a crash of the socket.
    await layer.group_send(f"run-{pipeline_run.pk}", {"type": "run.events", "events": "x"})
    assert await run_socket.receive_nothing(timeout=0.2)
    await run_socket.disconnect()
    await runs_socket.disconnect()
