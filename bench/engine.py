"""Engine speed at tier 0 (SQLite, in-process executor): prints medians and runs per second.

    .venv/bin/python bench/engine.py [--chain-runs 30] [--runs 500]

Uses a fresh SQLite database in data/bench-engine (APPSTRATE_DATA_DIR), never your own.
Figures: the median start-to-finish time of one run of 40 sequential trivial `python` steps
(start_run, then the executor's own code path in this thread), and the runs per second for 500
runs of 3 trivial steps started at once and executed by the in-process executor's threads
(the median of three such rounds, each printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(data_dir: Path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "RUN_ADAPTER"):
        os.environ.pop(name, None)
    os.environ["APPSTRATE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    # As in production: DEBUG makes Django record every query, which is not what we measure.
    settings.DEBUG = False


def trivial() -> dict:
    return {}


def make_workflow(slug: str, count: int, chain: bool):
    from workflows.definition import compile_definition, content_hash
    from workflows.models import Workflow, WorkflowVersion

    steps = [
        {
            "id": f"s{i}",
            "type": "python",
            "config": {"function": "bench.trivial"},
            "depends_on": [f"s{i - 1}"] if chain and i else [],
        }
        for i in range(count)
    ]
    canonical = compile_definition({"slug": slug, "steps": steps})
    workflow = Workflow.objects.create(slug=slug, name=slug)
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=1, content_hash=content_hash(canonical), definition=canonical
    )
    workflow.current_version = version
    workflow.save(update_fields=["current_version"])
    return workflow


CPU_MS: list[float] = []
THROUGHPUT_CPU_MS: list[float] = []
START_MS: list[float] = []


def chain_median(workflow, repeats: int) -> list[float]:
    from runs.models import Run
    from runs.services import execute_run, start_run

    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        cpu = time.process_time()
        run = start_run(workflow, input={}, submit=False)
        execute_run(run.pk)
        timings.append((time.perf_counter() - started) * 1000)
        CPU_MS.append((time.process_time() - cpu) * 1000)
        status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
        assert status == Run.Status.SUCCEEDED, status
    return timings


def throughput(workflow, count: int) -> float:
    from infra.executors.inline import InlineExecutor
    from runs.models import Run
    from runs.services import start_run

    executor = InlineExecutor()
    started = time.perf_counter()
    cpu = time.process_time()
    run_ids = [start_run(workflow, input={}, submit=False).pk for _ in range(count)]
    START_MS.append((time.perf_counter() - started) * 1000 / count)
    executor.start()
    for run_id in run_ids:
        executor.submit(run_id)
    # A light poll: the executor threads share this CPU (a filter on 500 ids cost them 9 %).
    active = Run.objects.filter(workflow=workflow, status__in=Run.ACTIVE_STATUSES)
    while active.exists():
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    THROUGHPUT_CPU_MS.append((time.process_time() - cpu) * 1000 / count)
    executor.stop()
    failed = Run.objects.filter(pk__in=run_ids).exclude(status=Run.Status.SUCCEEDED).count()
    assert failed == 0, f"{failed} runs did not succeed"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain-runs", type=int, default=30, help="runs of the 40-step chain")
    parser.add_argument("--runs", type=int, default=500, help="runs of 3 steps for runs/s")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of --runs runs (the median is reported)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the chain runs")
    args = parser.parse_args()

    data_dir = ROOT / "data" / "bench-engine"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    setup_django(data_dir)
    from django.conf import settings

    from workflows.nodes.python import register_function

    register_function(trivial, "bench.trivial")
    chain = make_workflow("bench-chain-40", 40, chain=True)
    small = make_workflow("bench-three", 3, chain=True)
    chain_median(chain, 3)  # warm up: imports, connection, statement caches

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        chain_median(chain, args.chain_runs)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return

    CPU_MS.clear()
    timings = chain_median(chain, args.chain_runs)
    # Several rounds, each of --runs fresh runs: the machine is shared, so one round can land
    # in a slow moment (the same work then costs a third more CPU time).
    rates = [throughput(small, args.runs) for _ in range(args.rounds)]
    print(f"tier 0 (SQLite WAL, EXECUTOR_CONCURRENCY={settings.EXECUTOR_CONCURRENCY})")
    print(
        f"chain of 40 trivial python steps: median {statistics.median(timings):.1f} ms "
        f"(min {min(timings):.1f}, max {max(timings):.1f}, {len(timings)} runs; target <= 40 ms)"
    )
    print(
        f"  (process CPU time per chain run, all threads: median {statistics.median(CPU_MS):.1f} ms;"
        f" load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    rounds = ", ".join(f"{rate:.0f}" for rate in rates)
    print(
        f"{args.runs} runs of 3 trivial steps: median {statistics.median(rates):.0f} runs/s "
        f"of {len(rates)} rounds ({rounds}; target >= 250)"
    )
    print(
        f"  (start_run: median {statistics.median(START_MS):.2f} ms a run, before the executor "
        f"starts; process CPU time per run: median {statistics.median(THROUGHPUT_CPU_MS):.1f} ms;"
        f" load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
