"""Masking cost: how long `credentials.masking.mask` takes on step outputs of a given size.

    .venv/bin/python bench/masking.py [--repeat 7]

`mask` masks the run's own secrets plus every secret the process has decrypted, so a worker
that has resolved many credentials pays for all of them. Prints the median time to mask a text
output of 10 KB, 100 KB and 1 MB (and a JSON output of 1,000 small strings) with 1, 10, 100 and
500 remembered secrets (the most a process keeps). No Django needed.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credentials import masking


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timings per figure (median)")
    args = parser.parse_args()
    run_secret = secrets.token_urlsafe(24)
    line = "INFO fetched page 17 of 40: 200 OK, 4312 bytes, Bearer *** elided\n"
    outputs = {
        "10 KB text": (line * 160)[:10_000],
        "100 KB text": (line * 1600)[:100_000],
        "1 MB text": (line * 16000)[:1_000_000],
        "JSON 1000 strings": {"items": [{"name": f"item {i}", "note": line} for i in range(1000)]},
    }
    print(f"{'remembered':>10}  " + "  ".join(f"{name:>18}" for name in outputs))
    for count in (1, 10, 100, 500):
        masking.forget_all()
        masking.remember(secrets.token_urlsafe(24) for _ in range(count))
        figures = [
            median_ms(lambda v=value: masking.mask(v, {run_secret}), args.repeat)
            for value in outputs.values()
        ]
        print(f"{count:>10}  " + "  ".join(f"{ms:>15.2f} ms" for ms in figures))


if __name__ == "__main__":
    main()
