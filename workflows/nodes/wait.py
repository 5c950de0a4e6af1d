"""`wait`: pause the run for a number of seconds; a cancel interrupts it at once."""

from __future__ import annotations

from typing import Any

from workflows.nodes.base import NodeType, StepContext, StepError
from workflows.nodes.config import check_fields, check_number, number_at_run_time
from workflows.nodes.registry import register_node_type

MAX_WAIT_SECONDS = 7 * 24 * 3600


@register_node_type
class WaitNode(NodeType):
    """Config: `{"seconds": 1.5}`. Output: `{"waited_seconds": 1.5}`."""

    name = "wait"
    idempotent_by_default = True

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        return check_fields(config, required={"seconds"}, optional=set()) + check_number(
            config, "seconds", low=0, high=MAX_WAIT_SECONDS
        )

    def execute(self, ctx: StepContext) -> Any:
        seconds = number_at_run_time(ctx.config.get("seconds"), "seconds")
        if not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise StepError(f"seconds must be between 0 and {MAX_WAIT_SECONDS}", retryable=False)
        if ctx.cancel.wait(seconds):
            raise StepError("cancelled while waiting", retryable=False)
        return {"waited_seconds": seconds}
