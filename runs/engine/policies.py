"""Step policies read from the canonical definition: retries, timeouts, idempotency, output."""

from __future__ import annotations

import json
import random
from typing import Any

from django.conf import settings

from workflows.definition import RETRY_DEFAULTS
from workflows.nodes.base import NodeType, StepError


def retry_policy(step: dict[str, Any]) -> dict[str, Any]:
    # Canonical definitions carry their retries already; the defaults cover hand-built ones.
    return {**RETRY_DEFAULTS, **((step.get("policies") or {}).get("retries") or {})}


def retry_delay(policy: dict[str, Any], attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Exponential doubles from `delay_seconds`, capped at `max_delay_seconds`; jitter spreads
    retries of many runs over the upper half of the delay so they do not stampede together.
    """
    base = float(policy.get("delay_seconds") or 0)
    if policy.get("backoff") == "exponential":
        base *= 2 ** (attempt - 1)
    cap = policy.get("max_delay_seconds")
    if cap is not None:
        base = min(base, float(cap))
    if policy.get("jitter"):
        base *= random.uniform(0.5, 1.0)
    return max(base, 0.0)


def should_retry(policy: dict[str, Any], error: StepError, attempt: int) -> bool:
    return (
        error.retryable
        and error.kind in (policy.get("retry_on") or [])
        and attempt < int(policy.get("max_attempts") or 1)
    )


def step_timeout(step: dict[str, Any]) -> float | None:
    value = (step.get("policies") or {}).get("timeout_seconds")
    return float(value) if value else None


def is_idempotent(step: dict[str, Any], node: NodeType | None) -> bool:
    declared = (step.get("policies") or {}).get("idempotent")
    if declared is not None:
        return bool(declared)
    if node is None:
        return False
    return node.is_idempotent(step.get("config") or {})


class OutputError(StepError):
    """The step's output is not JSON, or too big to keep."""


def check_output(output: Any) -> int:
    """Refuse an output that is not JSON or exceeds STEP_OUTPUT_MAX_BYTES; return its size."""
    try:
        size = len(json.dumps(output, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise OutputError(f"output is not JSON: {exc}", retryable=False) from exc
    limit = settings.STEP_OUTPUT_MAX_BYTES
    if size > limit:
        raise OutputError(
            f"output is {size} bytes, over the limit of {limit} bytes "
            "(STEP_OUTPUT_MAX_BYTES); store large data elsewhere and return a reference",
            retryable=False,
        )
    return size
