"""`workflow`: run another workflow as a child run, inline in this executor, and take its output."""

from __future__ import annotations

import re
from typing import Any

from workflows.nodes.base import NodeType, StepContext
from workflows.nodes.config import check_fields, is_expression
from workflows.nodes.registry import register_node_type

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")


@register_node_type
class WorkflowNode(NodeType):
    """Config: `{"workflow": "child-slug", "input": {...}}`. Output: the child run's output.

    Cancelling the parent cancels the child. Idempotent: after a crash the step re-attaches to
    the child run it started (continuing it) instead of starting another.
    """

    name = "workflow"
    idempotent_by_default = True

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problems = check_fields(config, required={"workflow"}, optional={"input"})
        slug = config.get("workflow")
        if "workflow" in config and not (isinstance(slug, str) and SLUG_RE.match(slug)):
            problems.append(("workflow", "must be the slug of a workflow"))
        child_input = config.get("input", {})
        if not isinstance(child_input, dict) and not is_expression(child_input):
            problems.append(("input", "must be an object (the child run's input)"))
        return problems

    def execute(self, ctx: StepContext) -> Any:
        from runs.subworkflows import run_subworkflow

        return run_subworkflow(
            parent_run_id=ctx.run_id,
            parent_step=ctx.step_id,
            slug=ctx.config.get("workflow"),
            input=ctx.config.get("input") or {},
            cancel=ctx.cancel,
        )
