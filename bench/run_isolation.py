"""What a `script` step costs in isolation: the process adapter against the docker adapter.

    .venv/bin/python bench/run_isolation.py [--steps 10]

Needs a Docker engine and the run image (infra/images/build.sh). No database is used: the
adapters are driven directly with a trivial Python script. Prints, per adapter, the median and
the worst wall time of one call (setup, run, teardown), and the docker/process ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "RUN_ADAPTER"):
        os.environ.pop(name, None)
    os.environ["APPSTRATE_DATA_DIR"] = str(ROOT / "data" / "bench-run-isolation")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")
    import django

    django.setup()


def time_calls(adapter, steps: int) -> list[float]:
    from infra.runners.base import ScriptSpec

    spec = ScriptSpec(language="python", source="import json; print(json.dumps({'ok': 1}))")
    timings = []
    for _ in range(steps):
        started = time.perf_counter()
        result = adapter.run_script(spec, cancel=threading.Event())
        timings.append(time.perf_counter() - started)
        assert result.exit_code == 0, result.stderr
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="calls per adapter")
    steps = parser.parse_args().steps
    setup_django()
    from infra.runners.docker import DockerRunAdapter
    from infra.runners.process import ProcessRunAdapter

    medians = {}
    for name, adapter in (("process", ProcessRunAdapter()), ("docker", DockerRunAdapter())):
        timings = time_calls(adapter, steps)
        medians[name] = statistics.median(timings)
        print(
            f"{name:<8} median {medians[name] * 1000:8.1f} ms   max {max(timings) * 1000:8.1f} ms"
        )
    print(f"docker/process ratio (median): {medians['docker'] / medians['process']:.1f}x")


if __name__ == "__main__":
    main()
