"""Tier 2 speed: this project vs raw Celery doing the same work, on one worker of concurrency 2.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/appstrate REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python bench/tier2.py [--chains 15] [--runs 500]

Starts one real `celery -A appstrate worker --concurrency 2` (prefork) on a scratch database
(`<name>_bench`, created and dropped here) and a private Redis key prefix, then measures, in the
same run and against the same worker:

- latency: the median start-to-finish of one run of 40 sequential trivial `python` steps (every
  step persisted, with its events) vs a raw Celery chain of 40 trivial tasks;
- throughput: runs per second for 500 runs of 3 trivial steps started at once vs 500 raw Celery
  chains of 3 trivial tasks, in three rounds of both sides back to back (the median round's
  ratio is reported, every round printed).

Start-to-finish is measured from the moment the caller starts the run (or sends the chain) to the
moment the worker records the end: `Run.finished_at` for us, a timestamp the last raw task pushes
to Redis for Celery. Same clock, same machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
DONE_KEY = "bench:done"  # under the bench's own prefix; the last raw task LPUSHes here


# --- what the worker imports (celery --include bench.tier2) -------------------------------------


def trivial() -> dict:
    return {}


@shared_task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None


@shared_task(name="bench.mark", ignore_result=True)
def mark(token: str) -> None:
    from django.conf import settings

    _redis(settings.REDIS_URL).lpush(_done_key(), f"{token} {time.time()}")


def _register_python_function() -> None:
    from workflows.nodes.python import register_function

    register_function(trivial, "bench.trivial")


def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _done_key() -> str:
    from django.conf import settings

    return f"{settings.REDIS_PREFIX}:{DONE_KEY}"


# In the worker, Django is set up before --include modules are imported; the bench process
# imports this module before Django and registers the function in setup_django() instead.
with contextlib.suppress(Exception):
    _register_python_function()


# --- the bench process -------------------------------------------------------------------------


def scratch_database(base_url: str) -> tuple[str, str]:
    parts = urlsplit(base_url)
    name = f"{parts.path.lstrip('/') or 'appstrate'}_bench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    return urlunsplit(parts._replace(path=f"/{name}")), admin


def recreate_database(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.DEBUG = False  # Django would record every query
    _register_python_function()


def make_workflow(slug: str, count: int):
    from workflows.definition import compile_definition, content_hash
    from workflows.models import Workflow, WorkflowVersion

    steps = [
        {
            "id": f"s{i}",
            "type": "python",
            "config": {"function": "bench.trivial"},
            "depends_on": [f"s{i - 1}"] if i else [],
        }
        for i in range(count)
    ]
    canonical = compile_definition({"slug": slug, "steps": steps})
    workflow = Workflow.objects.create(slug=slug, name=slug, definition=canonical)
    workflow.current_version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, content_hash=content_hash(canonical), definition=canonical
    )
    workflow.save(update_fields=["current_version"])
    return workflow


def start_worker(log_path: Path) -> subprocess.Popen:
    argv = [
        sys.executable, "-m", "celery", "-A", "appstrate", "worker", "--pool=prefork",
        "--concurrency=2", "-Q", "appstrate", "--include", "bench.tier2",
        "--without-gossip", "--without-mingle", "--loglevel=INFO", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while b" ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def wait_runs_final(run_ids: list[int], timeout: float) -> list:
    """Wait for the runs to end; return their `finished_at` (so the poll's pace never shows in
    the figures). The poll is one cheap query every 20 ms: the worker shares this CPU, and an
    IN filter of 500 ids every few ms took a good part of it."""
    from runs.models import Run

    deadline = time.monotonic() + timeout
    # The bench's runs are created one after another in its own database: an id range.
    active = Run.objects.filter(
        pk__range=(min(run_ids), max(run_ids)), status__in=Run.ACTIVE_STATUSES
    )
    while active.exists():
        if time.monotonic() > deadline:
            raise SystemExit("bench runs did not finish in time")
        time.sleep(0.02)
    rows = list(Run.objects.filter(pk__in=run_ids).values_list("status", "finished_at"))
    bad = [status for status, _ in rows if status != Run.Status.SUCCEEDED]
    if bad or len(rows) != len(run_ids):
        raise SystemExit(f"{len(bad)} bench runs did not succeed: {bad[:5]}")
    return [finished for _, finished in rows]


def ours_chain(workflow) -> float:
    from runs.services import start_run

    started = time.time()
    run = start_run(workflow, input={})
    (finished,) = wait_runs_final([run.pk], 120)
    return finished.timestamp() - started


def raw_chain(length: int, client) -> float:
    from celery import chain

    token = uuid.uuid4().hex
    started = time.time()
    chain(*[noop.si() for _ in range(length - 1)], mark.si(token)).apply_async()
    return _wait_marks(client, {token}, 120)[token] - started


def _wait_marks(client, tokens: set[str], timeout: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(tokens):
        item = client.brpop(_done_key(), timeout=1)
        if item:
            token, at = item[1].decode().split()
            if token in tokens:
                seen[token] = float(at)
        if time.monotonic() > deadline:
            raise SystemExit("raw chains did not finish in time")
    return seen


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process on the machine, with what it is (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    seen = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline") as cmd:
                fields, argv = stat.read().rsplit(")", 1)[1].split(), cmd.read()
        except OSError:
            continue  # gone meanwhile
        if argv.startswith("postgres"):
            kind = "PostgreSQL"
        elif "redis-server" in argv:
            kind = "Redis"
        elif "celery" in argv:
            kind = "Celery worker"
        elif int(entry) == os.getpid():
            kind = "this process (start_run / apply_async)"
        else:
            continue
        seen[int(entry)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return seen


def cpu_per_unit(before: dict, after: dict, units: int) -> str:
    spent: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    parts = [f"{kind} {seconds * 1000 / units:.1f}" for kind, seconds in sorted(spent.items())]
    return f"{sum(spent.values()) * 1000 / units:.1f} ms ({', '.join(parts)})"


def ours_throughput(workflow, count: int) -> float:
    from runs.services import start_run

    started = time.time()
    ids = [start_run(workflow, input={}).pk for _ in range(count)]
    finished = wait_runs_final(ids, 600)
    return count / (max(finished).timestamp() - started)


def raw_throughput(count: int, client) -> float:
    from celery import chain

    tokens = [uuid.uuid4().hex for _ in range(count)]
    started = time.time()
    for token in tokens:
        chain(noop.si(), noop.si(), mark.si(token)).apply_async()
    marks = _wait_marks(client, set(tokens), 600)
    return count / (max(marks.values()) - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=15, help="sequential 40-step runs per side")
    parser.add_argument("--runs", type=int, default=500, help="3-step runs per side")
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput rounds, each side in turn (median)"
    )
    args = parser.parse_args()
    if not (
        os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")
    ):
        raise SystemExit(
            "bench/tier2.py needs DATABASE_URL=postgres://... and REDIS_URL=redis://..."
        )
    database_url, admin_url = scratch_database(os.environ["DATABASE_URL"])
    db_name = urlsplit(database_url).path.lstrip("/")
    recreate_database(admin_url, db_name)
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_PREFIX"] = f"bench-{os.getpid()}"
    # As deployed: DEBUG off (Django would keep every query of the worker), with the secrets
    # that production requires then.
    os.environ.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        CREDENTIALS_KEYS=f"bench:{base64.b64encode(os.urandom(32)).decode()}",  # ID:AES-256 key
    )
    worker = None
    try:
        setup_django()
        from django.conf import settings

        client = _redis(settings.REDIS_URL)
        worker = start_worker(Path(settings.DATA_DIR) / "bench-tier2-worker.log")
        chain40 = make_workflow("bench-chain-40", 40)
        three = make_workflow("bench-three", 3)
        for _ in range(2):  # warm up both sides: imports, connections, pool processes
            ours_chain(chain40), raw_chain(40, client)
        ours = [ours_chain(chain40) for _ in range(args.chains)]
        raw = [raw_chain(40, client) for _ in range(args.chains)]
        # Each round runs both sides back to back, so a slow moment of this shared machine
        # lands on both; the median round's ratio is what is reported.
        rounds, cpu = [], []
        for _ in range(args.rounds):
            before = cpu_by_process()
            ours_rate = ours_throughput(three, args.runs)
            middle = cpu_by_process()
            raw_rate = raw_throughput(args.runs, client)
            after = cpu_by_process()
            rounds.append((ours_rate, raw_rate))
            cpu.append(
                (cpu_per_unit(before, middle, args.runs), cpu_per_unit(middle, after, args.runs))
            )
        report(statistics.median(ours), statistics.median(raw), rounds, args)
        print("CPU of every process involved, per run / per chain, each round:")
        for number, (ours_cpu, raw_cpu) in enumerate(cpu, 1):
            print(f"  round {number}: appstrate {ours_cpu}")
            print(f"           raw Celery {raw_cpu}")
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        recreate_database(admin_url, db_name, drop_only=True)
        with contextlib.suppress(Exception):  # best-effort cleanup
            keys = client.keys(f"{os.environ['REDIS_PREFIX']}:*")
            if keys:
                client.delete(*keys)


def report(ours_ms: float, raw_ms: float, rounds: list[tuple[float, float]], args) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("Tier 2 bench: one Celery worker, prefork, concurrency 2 (PostgreSQL + Redis)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (figures scale with it)")
    print(f"40 sequential trivial steps, median of {args.chains} (start to finish):")
    print(f"  appstrate run        {ours_ms * 1000:8.1f} ms")
    print(f"  raw Celery chain     {raw_ms * 1000:8.1f} ms")
    print(f"  ratio appstrate/raw  {ours_ms / raw_ms:8.2f}  (goal <= 1.00)")
    print(f"{args.runs} runs of 3 trivial steps, started at once, {len(rounds)} rounds:")
    for number, (ours_rate, raw_rate) in enumerate(rounds, 1):
        print(
            f"  round {number}: appstrate {ours_rate:6.1f} runs/s, raw Celery chains "
            f"{raw_rate:6.1f} chains/s, ratio {ours_rate / raw_rate:5.2f}"
        )
    ours_rate, raw_rate = sorted(rounds, key=lambda pair: pair[0] / pair[1])[len(rounds) // 2]
    print("  median round:")
    print(f"  appstrate            {ours_rate:8.1f} runs/s")
    print(f"  raw Celery chains    {raw_rate:8.1f} chains/s")
    print(f"  ratio appstrate/raw  {ours_rate / raw_rate:8.2f}  (goal >= 1.00, hope 2)")


if __name__ == "__main__":
    main()
