"""The Python functions the demo workflows call (registered by demo/flows.py)."""

from __future__ import annotations

import random
from typing import Any

from workflows.nodes.base import StepContext, StepError


def generate_numbers(count: int = 5, seed: int | None = None) -> dict[str, Any]:
    """`count` pseudo-random integers from 1 to 20 (repeatable with `seed`)."""
    if not isinstance(count, int) or not 1 <= count <= 1000:
        raise StepError("count must be an integer from 1 to 1000", retryable=False)
    rng = random.Random(seed)
    return {"numbers": [rng.randint(1, 20) for _ in range(count)]}


def label(kind: str, total: int | float) -> dict[str, Any]:
    return {"label": kind, "message": f"The total {total} counts as {kind}."}


def summarise(numbers: list[int], squares: list[int], label: Any, waited: Any) -> dict[str, Any]:
    return {
        "count": len(numbers),
        "sum": sum(numbers),
        "sum_of_squares": sum(squares),
        "label": (label or {}).get("label"),
        "waited_seconds": (waited or {}).get("waited_seconds"),
    }


def flaky(ctx: StepContext, succeed_on_attempt: int = 3, fail: bool = False) -> dict[str, Any]:
    """Fails its first attempts, then succeeds; with `fail` it never succeeds."""
    if fail:
        raise StepError(f"asked to fail (attempt {ctx.attempt})")
    if ctx.attempt < succeed_on_attempt:
        raise StepError(f"flaky failure on attempt {ctx.attempt} of {succeed_on_attempt}")
    return {"succeeded_on_attempt": ctx.attempt}
