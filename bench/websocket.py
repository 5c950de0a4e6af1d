"""Latency from a run event being appended by the engine to a WebSocket client receiving it.

The real stack, in the shape each tier runs: daphne serving the ASGI app on a loopback port
(this process), a `websockets` client in another process (the browser) connected to
`/ws/runs/<id>/` with a real session cookie, and an engine-like thread appending events with
`runs.events.append_event` (insert, commit, publish through the channel layer): in the
serving process at tiers 0 and 1, in a third process at tier 2 (standing for a worker,
publishing through Redis). The tier is whatever the environment selects:

    APPSTRATE_DATA_DIR=data/bench-t0 .venv/bin/python bench/websocket.py
    APPSTRATE_DATA_DIR=data/bench-t2 DATABASE_URL=postgres://postgres@127.0.0.1:5432/appstrate_bench \
      REDIS_URL=redis://127.0.0.1:6379/6 REDIS_PREFIX=bench .venv/bin/python bench/websocket.py

Prints p50, p95, p99 and max over --events events (default 600), sent one at a time with a
pause, so the figure is delivery latency rather than queueing behind a burst; once from the
append call (insert, commit, publish, deliver) and once from the commit (publish, deliver).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare() -> tuple[int, str]:
    """Migrate, and create an operator, a session and a run to stream. Returns (run id, cookie)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from runs.models import Run
    from workflows.models import Workflow, WorkflowVersion

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    definition = {"slug": "bench", "name": "Bench", "steps": [{"id": "s", "type": "wait"}]}
    workflow, _ = Workflow.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    version, _ = WorkflowVersion.objects.get_or_create(
        workflow=workflow, number=1, defaults={"content_hash": "bench", "definition": definition}
    )
    run = Run.objects.create(workflow=workflow, version=version, status=Run.Status.RUNNING)
    return run.pk, f"sessionid={session.session_key}"


def client(url: str, cookie: str, count: int, ready, out: list[tuple[int, float]]) -> None:
    from websockets.sync.client import connect

    with connect(
        url, additional_headers={"Cookie": cookie, "Origin": "http://127.0.0.1"}, open_timeout=10
    ) as ws:
        ready()
        while len(out) < count:
            frame = json.loads(ws.recv(timeout=30))
            if frame.get("kind") == "event" and frame["type"] == "step.log":
                out.append((frame["payload"]["n"], time.time()))


def engine(
    run_id: int, count: int, pause: float, ready: threading.Event, sent: dict[int, tuple]
) -> None:
    from runs.events import append_event

    ready.wait(60)
    time.sleep(0.3)  # let the subscription settle before the first measured event
    for n in range(count):
        started = time.time()
        append_event(run_id, "step.log", {"step": "s", "text": f"line {n}", "n": n})
        sent[n] = (started, time.time())  # before the append, and once it committed
        time.sleep(pause)


def remote_client(url: str, cookie: str, count: int) -> None:
    """The browser, in its own process: says "ready" once connected, then reports arrivals."""
    received: list[tuple[int, float]] = []
    client(url, cookie, count, lambda: print("ready", flush=True), received)
    print(json.dumps({"received": received}), flush=True)


def remote_engine(run_id: int, count: int, pause: float) -> None:
    """A worker, in its own process (tier 2+): appends events once told to go on stdin."""
    import django

    django.setup()
    go = threading.Event()
    sent: dict[int, tuple[float, float]] = {}
    feeder = threading.Thread(target=engine, args=(run_id, count, pause, go, sent))
    feeder.start()
    sys.stdin.readline()
    go.set()
    feeder.join()
    from runs.events import flush_published

    flush_published()
    print(json.dumps({"sent": sent}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600)
    # 50 events a second: far above what steps log in practice, below where a 2-core machine
    # starts queueing (then the figure measures the backlog, not delivery).
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between events")
    parser.add_argument("--client", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--engine", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        remote_client(*args.client, args.events)
        return
    if args.engine:
        remote_engine(args.engine, args.events, args.pause)
        return

    import django

    django.setup()
    from daphne.server import Server
    from twisted.internet import reactor

    from appstrate.asgi import application
    from infra.registry import get_mode

    mode = get_mode()
    # At tiers 0 and 1 the engine runs in the serving process; at 2+ in a worker elsewhere.
    engine_here = mode.channels == "inmemory"
    run_id, cookie = prepare()
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}/"
    result: dict = {}
    sent: dict[int, tuple[float, float]] = {}

    def drive() -> None:
        for _ in range(100):  # wait for daphne to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        me = [sys.executable, __file__, "--events", str(args.events), "--pause", str(args.pause)]
        connected = threading.Event()
        feeder = threading.Thread(
            target=engine, args=(run_id, args.events, args.pause, connected, sent)
        )
        worker = None
        if not engine_here:
            worker = subprocess.Popen(
                [*me, "--engine", str(run_id)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        try:
            with subprocess.Popen(
                [*me, "--client", url, cookie], stdout=subprocess.PIPE, text=True
            ) as browser:
                for line in browser.stdout:
                    if line.strip() == "ready":
                        if worker:
                            worker.stdin.write("go\n")
                            worker.stdin.flush()
                        else:
                            connected.set()
                            feeder.start()
                    elif line.startswith("{"):
                        result.update(json.loads(line))
            if worker:
                out, _ = worker.communicate(timeout=60)
                result.update(json.loads(out.strip().splitlines()[-1]))
            elif feeder.is_alive():
                feeder.join()
        finally:
            if worker and worker.poll() is None:
                worker.kill()
            reactor.callFromThread(reactor.stop)

    threading.Thread(target=drive, daemon=True).start()
    Server(
        application,
        endpoints=[f"tcp:port={port}:interface=127.0.0.1"],
        signal_handlers=False,
        verbosity=0,
    ).run()
    received = result.get("received", [])
    sent = sent if engine_here else {int(n): t for n, t in result.get("sent", {}).items()}
    if len(received) < args.events:
        print(f"tier {mode.tier}: only {len(received)} of {args.events} events arrived")
        sys.exit(1)
    total = [(at - sent[n][0]) * 1000 for n, at in received]
    after_commit = [(at - sent[n][1]) * 1000 for n, at in received]
    where = "the serving process" if engine_here else "another process (as a worker)"
    print(
        f"tier {mode.tier}, {len(total)} events from {where}, one every {args.pause * 1000:g} ms:"
    )
    print(f"  append_event called -> client receives: {summary(total)}")
    print(f"  commit (publish)    -> client receives: {summary(after_commit)}")


def summary(values: list[float]) -> str:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return (
        f"p50 {statistics.median(ordered):.2f} ms, p95 {pct(0.95):.2f} ms, "
        f"p99 {pct(0.99):.2f} ms, max {ordered[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
