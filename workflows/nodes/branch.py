"""`branch`: the first case whose condition holds picks which direct dependents run.

Config: `{"cases": [{"when": "{{ steps.x.output.n > 10 }}", "then": ["big"]}], "default":
["small"]}`. Definitions canonicalise a bare condition (`"steps.x.output.n > 10"`) to one
`{{ }}` expression, so by the time `execute` runs the engine has rendered each `when` to its
value. The engine skips the dependents that were not chosen (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from workflows.nodes.base import NodeType, StepContext, StepError
from workflows.nodes.config import check_fields, is_expression
from workflows.nodes.registry import register_node_type

MAX_CASES = 50


def _check_targets(value: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [(field, "must be a list of step ids")]
    return []


@register_node_type
class BranchNode(NodeType):
    name = "branch"
    idempotent_by_default = True

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problems = check_fields(config, required={"cases"}, optional={"default"})
        cases = config.get("cases")
        if "cases" in config and (not isinstance(cases, list) or not cases):
            return [*problems, ("cases", "must be a non-empty list of {when, then}")]
        if isinstance(cases, list) and len(cases) > MAX_CASES:
            problems.append(("cases", f"at most {MAX_CASES} cases"))
        for index, case in enumerate(cases or []):
            field = f"cases[{index}]"
            if not isinstance(case, dict):
                problems.append((field, "must be an object {when, then}"))
                continue
            problems += [
                (f"{field}.{f}", m)
                for f, m in check_fields(case, required={"when", "then"}, optional=set())
            ]
            when = case.get("when")
            if "when" in case and not isinstance(when, str | bool):
                problems.append((f"{field}.when", "must be an expression"))
            if "then" in case:
                problems += _check_targets(case["then"], f"{field}.then")
        if "default" in config:
            problems += _check_targets(config["default"], "default")
        return problems

    def normalize_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """A bare condition becomes one `{{ }}` expression, so rendering yields its value."""
        cases = config.get("cases")
        if not isinstance(cases, list):
            return config
        normalized = []
        for case in cases:
            when = case.get("when") if isinstance(case, dict) else None
            if isinstance(when, str) and "{{" not in when:
                case = {**case, "when": "{{ " + when.strip() + " }}"}
            normalized.append(case)
        return {**config, "cases": normalized, "default": config.get("default", [])}

    def targets(self, config: dict[str, Any]) -> list[tuple[str, list[str]]]:
        """(field, step ids) for every list of steps the config names (checked by definitions)."""
        cases = config.get("cases")
        found = [
            (f"cases[{i}].then", case["then"])
            for i, case in enumerate(cases if isinstance(cases, list) else [])
            if isinstance(case, dict) and isinstance(case.get("then"), list)
        ]
        if isinstance(config.get("default"), list):
            found.append(("default", config["default"]))
        return found

    def execute(self, ctx: StepContext) -> Any:
        for index, case in enumerate(ctx.config.get("cases") or []):
            if is_expression(case.get("when")):
                # The engine renders config before execute; an expression here is a bug there.
                raise StepError(f"cases[{index}].when was not rendered", retryable=False)
            if case.get("when"):
                return {"chosen": list(case.get("then") or []), "case": index}
        return {"chosen": list(ctx.config.get("default") or []), "case": None}
