"""The tier 0/1 in-process executor, the per-workflow concurrency limit and the event log."""

import asyncio
import itertools
import threading
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.management import CommandError, call_command
from django.db import connections

from infra.executors.inline import InlineExecutor, is_serving_process
from runs import services
from runs.events import append_event, flush_published
from runs.models import Run
from tests.runs.conftest import chain, make_workflow, py

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_final(run_ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Run.objects.filter(pk__in=run_ids, status__in=Run.ACTIVE_STATUSES).exists():
            return
        time.sleep(0.05)
    raise AssertionError("runs did not finish")


@pytest.fixture
def executor():
    started = []

    def start(concurrency=3):
        instance = InlineExecutor(concurrency=concurrency)
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


def test_it_picks_up_queued_runs_when_it_starts_and_runs_submitted_ones_at_once(
    executor, monkeypatch
):
    # An idle poll slower than the test: only the start-up sweep and submit() can start runs.
    monkeypatch.setattr("infra.executors.inline.IDLE_POLL_SECONDS", 60.0)
    workflow = make_workflow(chain("inline", 2))
    waiting = services.start_run(workflow)  # queued while no executor was running
    running = executor()
    wait_until_final([waiting.pk])

    started = time.monotonic()
    fresh = services.start_run(workflow)
    running.submit(fresh.pk)
    wait_until_final([fresh.pk])

    assert time.monotonic() - started < 10  # woken by submit, not by the (60 s) idle poll
    assert Run.objects.get(pk=waiting.pk).status == Run.Status.SUCCEEDED
    assert Run.objects.get(pk=fresh.pk).owner == running.executor_id


@pytest.mark.tier0  # at tier 2 start_run hands runs to Celery: the scenario suite covers that
def test_it_returns_from_start_run_at_once_while_the_run_proceeds_in_the_background(executor):
    from infra.registry import get_executor

    workflow = make_workflow({"slug": "slow-bg", "steps": [py("s", "sleepy", {"seconds": 0.5})]})
    shared = get_executor()
    assert isinstance(shared, InlineExecutor)
    shared.start()
    try:
        started = time.monotonic()
        run = services.start_run(workflow)
        assert time.monotonic() - started < 0.3
        assert Run.objects.get(pk=run.pk).status in Run.ACTIVE_STATUSES
        wait_until_final([run.pk])
    finally:
        shared.stop()
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED


def test_it_holds_runs_above_the_concurrency_limit_in_the_queue_and_starts_them_in_order(executor):
    workflow = make_workflow(
        {
            "slug": "one-at-a-time",
            "policies": {"concurrency": 1},
            "steps": [py("s", "sleepy", {"seconds": 0.3})],
        }
    )
    runs = [services.start_run(workflow) for _ in range(4)]
    running = executor(concurrency=3)
    # Submitted newest first: the limit still starts them in created order.
    for run in reversed(runs):
        running.submit(run.pk)
    # Sample while they execute: never more than one running, the others queued.
    seen = set()
    deadline = time.monotonic() + 30
    while Run.objects.filter(workflow=workflow, status__in=Run.ACTIVE_STATUSES).exists():
        seen.add(Run.objects.filter(workflow=workflow, status="running").count())
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert max(seen) == 1

    rows = list(Run.objects.filter(workflow=workflow).order_by("created_at", "id"))
    assert all(r.status == Run.Status.SUCCEEDED for r in rows)
    for earlier, later in itertools.pairwise(rows):
        assert later.started_at >= earlier.finished_at  # never two at once, in created order


@pytest.mark.tier0
@pytest.mark.sqlite
def test_it_copies_the_sqlite_log_into_the_database_file_while_it_runs(executor):
    """Checkpoints happen in the executor's own thread, not in a commit that holds the writer
    lock: a commit only appends to the log, and the database file catches up within a second."""
    from pathlib import Path

    database = Path(connections["default"].settings_dict["NAME"])

    def write_and_watch(seconds):
        before = database.stat().st_mtime_ns
        make_workflow(chain(f"checkpointed-{time.monotonic_ns()}", 1))  # a few pages of log
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if database.stat().st_mtime_ns != before:
                return True
            time.sleep(0.02)
        return False

    # Without the executor nobody checkpoints a log this small: the file stays as it was.
    assert not write_and_watch(0.5)
    running = executor()
    assert write_and_watch(2.0)
    running.stop()
    assert not any(t.name == "appstrate-sqlite-checkpoint" for t in threading.enumerate())


def test_it_only_starts_in_serving_processes():
    assert is_serving_process(["manage.py", "runserver"])
    assert is_serving_process(["/usr/bin/daphne", "appstrate.asgi:application"])
    assert is_serving_process(["/venv/lib/python3.12/site-packages/daphne/__main__.py"])
    assert not is_serving_process(["manage.py", "migrate"])
    assert not is_serving_process(["manage.py", "shell"])
    assert not is_serving_process(["/venv/bin/pytest", "tests"])


def test_it_numbers_events_without_gaps_or_duplicates_under_concurrent_writers():
    run = services.start_run(make_workflow(chain("events", 1)))

    def write(n):
        try:
            for i in range(25):
                append_event(run, "step.log", {"writer": n, "i": i})
        finally:
            connections.close_all()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(30)

    seqs = list(run.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 102))  # run.queued + 100
    run.refresh_from_db()
    assert run.last_event_seq == 101


async def receive_events(layer, channel, count):
    """`count` event messages from a channel, bundles (runs.events.bundle) unpacked."""
    events = []
    while len(events) < count:
        message = await asyncio.wait_for(layer.receive(channel), 5)
        events += message["events"] if message["type"] == "run.events" else [message]
    return events


async def test_it_publishes_events_to_the_run_group_and_run_status_events_to_the_runs_group():
    layer = get_channel_layer()
    run = await database_sync_to_async(services.start_run)(
        await database_sync_to_async(make_workflow)(chain("published", 1))
    )
    await database_sync_to_async(flush_published)()  # run.queued went out before we listened
    run_channel = await layer.new_channel()
    all_channel = await layer.new_channel()
    await layer.group_add(f"run-{run.pk}", run_channel)
    await layer.group_add("runs", all_channel)

    log = await database_sync_to_async(append_event)(run, "step.log", {"text": "hello"})
    status = await database_sync_to_async(append_event)(run, "run.note", {"text": "status"})

    received = await receive_events(layer, run_channel, 2)
    for event, message in zip((log, status), received, strict=True):
        assert message["type"] == "run.event" and message["run_id"] == run.pk
        assert message["seq"] == event.seq and message["event"] == event.type
        assert message["payload"] == event.payload
    # The runs list only shows run status changes: a step event never reaches its group.
    (message,) = await receive_events(layer, all_channel, 1)
    assert message["seq"] == status.seq and message["event"] == "run.note"
    await layer.group_discard(f"run-{run.pk}", run_channel)
    await layer.group_discard("runs", all_channel)


async def test_it_publishes_a_burst_of_one_runs_events_as_one_ordered_bundle():
    from runs.events import publish_messages

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("run-424242", channel)
    burst = [
        {"type": "run.event", "run_id": 424242, "seq": seq, "event": "step.log", "payload": {}}
        for seq in (1, 2, 3)
    ]
    publish_messages(burst)  # handed over at once: the publisher sends them in one batch
    message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message["type"] == "run.events" and message["run_id"] == 424242
    assert [event["seq"] for event in message["events"]] == [1, 2, 3]
    await layer.group_discard("run-424242", channel)


def follow_here() -> list[str]:
    """At tier 2+ workers execute runs; this test has none, so the command executes it here."""
    from infra.registry import get_mode

    return [] if get_mode().executor == "inline" else ["--here"]


def test_runworkflow_waits_prints_each_step_and_exits_non_zero_on_failure(capsys):
    make_workflow(chain("cmd-ok", 2, "echo"))
    make_workflow({"slug": "cmd-bad", "steps": [py("boom", "fatal", {"message": "kaput"})]})

    call_command("runworkflow", "cmd-ok", "--wait", *follow_here())
    out = capsys.readouterr().out
    assert "s0: succeeded" in out and "s1: succeeded" in out and "succeeded" in out.splitlines()[-1]

    with pytest.raises(CommandError, match=r"failed: .*kaput"):
        call_command("runworkflow", "cmd-bad", "--wait", *follow_here())
    assert "boom: failed" in capsys.readouterr().out


def test_runworkflow_refuses_bad_input_clearly_and_starts_nothing():
    make_workflow(
        {
            "slug": "cmd-typed",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "steps": [py("s", "noop")],
        }
    )
    for bad, message in [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"n": "x"}', "is not of type 'integer'"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("runworkflow", "cmd-typed", "--input", bad)
    with pytest.raises(CommandError, match="No workflow"):
        call_command("runworkflow", "no-such-workflow")
    assert not Run.objects.exists()
