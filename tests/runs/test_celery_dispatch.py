"""The Celery executor and the Redis pub-sub against real Redis (tier 2)."""

import json
import threading
import time

import pytest
import redis
from django.conf import settings

from infra.executors.celery import CeleryExecutor
from infra.pubsub.redis import RedisPubSub
from runs.models import Run
from runs.sweeps import dispatch_stranded_runs
from tests.tier2_processes import RedisServer, celery_broker, unused_port
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.tier2


def make_run(queue: str = "appstrate") -> Run:
    workflow = Workflow.objects.create(slug=f"wf-{queue}", name="Dispatch")
    definition = {"slug": workflow.slug, "policies": {"queue": queue}, "steps": []}
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, content_hash="0" * 64, definition=definition
    )
    return Run.objects.create(workflow=workflow, version=version)


def queue_messages(client: redis.Redis, queue: str) -> list[dict]:
    key = f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix']}{queue}"
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


@pytest.fixture
def broker(tmp_path):
    """Point this process's Celery app at a private redis-server for the test."""
    with RedisServer(tmp_path).start() as server, celery_broker(server.url):
        yield server


@pytest.mark.django_db
def test_it_publishes_one_task_carrying_only_the_run_id_on_the_workflow_queue(broker):
    run = make_run(queue="special")
    assert CeleryExecutor().dispatch(run.pk)
    client = redis.Redis.from_url(broker.url)
    messages = queue_messages(client, "special")
    # One message, on the queue the workflow's policy names, with nothing but the id.
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "runs.execute_run"
    assert messages[0]["headers"]["argsrepr"] == f"({run.pk},)"
    assert queue_messages(client, "appstrate") == []
    run.refresh_from_db()
    assert run.dispatched_at is not None


@pytest.mark.django_db
def test_it_leaves_the_run_queued_without_hanging_when_the_broker_is_down(broker):
    run = make_run()
    broker.stop()
    started = time.monotonic()
    # submit() never raises; the run stays queued and undispatched.
    CeleryExecutor().submit(run.pk)
    assert time.monotonic() - started < 3
    run.refresh_from_db()
    assert (run.status, run.dispatched_at) == (Run.Status.QUEUED, None)


@pytest.mark.django_db
def test_it_dispatches_stranded_runs_once_the_broker_is_back(broker, settings):
    settings.DISPATCH_GRACE_SECONDS = 0
    run = make_run()
    broker.stop()
    executor = CeleryExecutor()
    executor.submit(run.pk)
    from django.utils import timezone

    # While Redis is down the sweep gives up at once and reports it.
    assert dispatch_stranded_runs(executor, timezone.now()) == (0, True)
    broker.start()
    assert dispatch_stranded_runs(executor, timezone.now()) == (1, False)
    # A second sweep finds nothing left to do: the run was handed over once.
    assert dispatch_stranded_runs(executor, timezone.now()) == (0, False)
    assert len(queue_messages(redis.Redis.from_url(broker.url), "appstrate")) == 1


def test_it_delivers_a_cancel_to_a_subscriber_within_a_second():
    listener, publisher = RedisPubSub(), RedisPubSub()
    received: list[tuple[int, float]] = []
    arrived = threading.Event()

    def on_cancel(run_id: int) -> None:
        received.append((run_id, time.monotonic()))
        arrived.set()

    listener.subscribe_cancel(on_cancel)
    try:
        assert listener.wait_subscribed(5)
        sent = time.monotonic()
        publisher.publish_cancel(42)
        assert arrived.wait(1)
        assert received[0][0] == 42 and received[0][1] - sent < 1
    finally:
        listener.close()


def test_it_ignores_malformed_cancel_messages():
    listener = RedisPubSub()
    received: list[int] = []
    arrived = threading.Event()
    listener.subscribe_cancel(lambda run_id: (received.append(run_id), arrived.set()))
    try:
        assert listener.wait_subscribed(5)
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.publish(listener.channel, b"not-a-number")
        client.publish(listener.channel, b"7")
        assert arrived.wait(1)
        assert received == [7]
    finally:
        listener.close()


def test_it_publishes_a_cancel_without_raising_when_redis_is_down():
    pubsub = RedisPubSub(url=f"redis://127.0.0.1:{unused_port()}/0")
    started = time.monotonic()
    pubsub.publish_cancel(1)
    assert time.monotonic() - started < 3


def test_it_keeps_listening_after_redis_restarts(tmp_path):
    server = RedisServer(tmp_path).start()
    listener = RedisPubSub(url=server.url)
    received = threading.Event()
    listener.subscribe_cancel(lambda run_id: received.set())
    try:
        assert listener.wait_subscribed(5)
        server.stop()
        server.start()
        # The listener reconnects by itself and hears the next cancel.
        deadline = time.monotonic() + 10
        while not received.is_set() and time.monotonic() < deadline:
            RedisPubSub(url=server.url).publish_cancel(5)
            received.wait(0.2)
        assert received.is_set()
    finally:
        listener.close()
        server.stop()


@pytest.mark.django_db
def test_it_hands_an_orphaned_run_to_a_live_executor_once(broker, settings):
    from datetime import timedelta

    from django.utils import timezone

    from runs.sweeps import dispatch_orphaned_runs

    settings.ORPHAN_AFTER_SECONDS = 30
    run = make_run()
    long_ago = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING, owner="celery@gone:1:dead", heartbeat_at=long_ago
    )
    alive = make_run(queue="other")
    Run.objects.filter(pk=alive.pk).update(
        status=Run.Status.RUNNING, owner="celery@here:2:live", heartbeat_at=timezone.now()
    )
    executor = CeleryExecutor()
    # The silent run is dispatched; the one heartbeating is left alone.
    assert dispatch_orphaned_runs(executor, timezone.now()) == 1
    # Until a new executor has had time to claim it, later sweeps do not dispatch it again.
    assert dispatch_orphaned_runs(executor, timezone.now()) == 0
    messages = queue_messages(redis.Redis.from_url(broker.url), "appstrate")
    assert [m["headers"]["argsrepr"] for m in messages] == [f"({run.pk},)"]
