"""Small checks the node types share when they validate their config."""

from __future__ import annotations

from typing import Any

Problems = list[tuple[str, str]]


def is_expression(value: Any) -> bool:
    """A string with `{{ }}`: its value is known only at run time, so type checks wait."""
    return isinstance(value, str) and "{{" in value


def check_fields(config: dict[str, Any], *, required: set[str], optional: set[str]) -> Problems:
    problems = [(name, "is required") for name in sorted(required) if name not in config]
    allowed = required | optional
    problems += [
        (name, f"unknown field; allowed: {', '.join(sorted(allowed))}")
        for name in config
        if name not in allowed
    ]
    return problems


def check_number(
    config: dict[str, Any], name: str, *, low: float, high: float, integer: bool = False
) -> Problems:
    """A number in [low, high] (or an expression), when present."""
    if name not in config or is_expression(config[name]):
        return []
    value = config[name]
    kind = int if integer else int | float
    if not isinstance(value, kind) or isinstance(value, bool):
        return [(name, f"must be {'an integer' if integer else 'a number'}")]
    if not low <= value <= high:
        return [(name, f"must be between {low:g} and {high:g}")]
    return []


def check_str_map(config: dict[str, Any], name: str) -> Problems:
    """An object whose keys and values are strings (values may be expressions)."""
    value = config.get(name)
    if value is None or is_expression(value):
        return []
    if not isinstance(value, dict):
        return [(name, "must be an object of strings")]
    return [
        (f"{name}.{key}", "must be a string")
        for key, item in value.items()
        if not isinstance(item, str)
    ]


def number_at_run_time(value: Any, name: str) -> float:
    """A rendered value that must now be a number (it may have come from an expression)."""
    from workflows.nodes.base import StepError

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepError(f"{name} must be a number, got {value!r}"[:200], retryable=False)
    return float(value)


def workflow_slug(ctx: Any) -> str:
    """The slug of the workflow a step belongs to (for resolving credentials)."""
    if ctx.workflow_slug:
        return ctx.workflow_slug
    from runs.models import Run

    slug = Run.objects.filter(pk=ctx.run_id).values_list("workflow__slug", flat=True).first()
    return slug or ""


def check_rendered(node: Any, config: dict[str, Any]) -> None:
    """Validate a config again after rendering: an expression may have produced a value of
    the wrong type (a list of headers, a text timeout). StepError naming the field."""
    from workflows.nodes.base import StepError

    problems = node.validate_config(config)
    if problems:
        field, message = problems[0]
        raise StepError(f"config.{field} {message} (after rendering expressions)", retryable=False)
