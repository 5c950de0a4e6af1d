"""One JSON shape for every workflow, from code or the console: validate it and fill defaults.

`compile_definition(raw)` returns the canonical form (docs/architecture.md) or raises
`DefinitionError` listing every problem, each naming the step and the field. The DSL in
`workflows.flows` and the admin form both go through it, so both are validated identically.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from workflows import expressions
from workflows.nodes.registry import get_node_type, node_type_names

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
STEP_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_STEPS = 500
MAX_DEFINITION_BYTES = 1_000_000
MAX_SECONDS = 7 * 24 * 3600

TOP_FIELDS = {"slug", "name", "description", "input_schema", "policies", "steps", "output"}
STEP_FIELDS = {"id", "type", "config", "depends_on", "policies", "when"}
WORKFLOW_POLICY_DEFAULTS: dict[str, Any] = {
    "timeout_seconds": None,  # None: settings.RUN_MAX_TIMEOUT_SECONDS
    "max_step_executions": 200,
    "concurrency": None,
    "queue": "appstrate",
    "allow_private_network": False,
}
RETRY_DEFAULTS: dict[str, Any] = {
    "max_attempts": 1,
    "backoff": "exponential",
    "delay_seconds": 1.0,
    "max_delay_seconds": 60.0,
    "jitter": True,
    "retry_on": ["error", "timeout"],
}
STEP_POLICY_DEFAULTS: dict[str, Any] = {"timeout_seconds": 300, "idempotent": None}
RETRY_KINDS = ("error", "timeout")
BACKOFFS = ("fixed", "exponential")


class DefinitionError(ValueError):
    """An invalid definition. `.errors` is a list of {"step", "field", "message"}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(format_error(e) for e in errors))


def format_error(error: dict[str, Any]) -> str:
    where = f"step {error['step']!r}, " if error.get("step") else ""
    return f"{where}{error['field']}: {error['message']}"


def content_hash(canonical: dict[str, Any]) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _Errors(list):
    def add(self, step: str | None, field: str, message: str) -> None:
        self.append({"step": step, "field": field, "message": message})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unknown(fields: dict, allowed: set[str], errors: _Errors, step: str | None, prefix: str):
    for name in fields:
        if name not in allowed:
            where = f"{prefix}{name}" if prefix else str(name)
            errors.add(step, where, f"unknown field; allowed: {', '.join(sorted(allowed))}")


def compile_definition(raw: Any, *, check_credentials: bool = True) -> dict[str, Any]:
    """Validate `raw` and return the canonical definition with every default filled.
    `check_credentials=False` skips only the database look-up of credential references (the
    boot-time system check, which must not need a database)."""
    errors = _Errors()
    if not isinstance(raw, dict):
        raise DefinitionError([{"step": None, "field": "", "message": "must be a JSON object"}])
    try:
        size = len(json.dumps(raw))
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"not JSON: {exc}"
        raise DefinitionError([{"step": None, "field": "", "message": message}]) from exc
    if size > MAX_DEFINITION_BYTES:
        message = f"larger than {MAX_DEFINITION_BYTES} bytes of JSON"
        raise DefinitionError([{"step": None, "field": "", "message": message}])
    raw = copy.deepcopy(raw)
    _unknown(raw, TOP_FIELDS, errors, None, "")
    canonical = {
        "slug": _slug(raw.get("slug"), errors),
        "name": _text(raw, "name", raw.get("slug") or "", 200, errors),
        "description": _text(raw, "description", "", 10_000, errors),
        "input_schema": _input_schema(raw.get("input_schema", {"type": "object"}), errors),
        "policies": _workflow_policies(raw.get("policies", {}), errors),
        "steps": [],
        "output": raw.get("output"),
    }
    canonical["steps"] = _steps(raw.get("steps"), canonical["policies"], errors)
    _check_graph(canonical["steps"], errors)
    if canonical["output"] is not None:
        _check_templates(None, "output", canonical["output"], _step_ids(canonical), errors)
    if errors:
        raise DefinitionError(list(errors))
    if check_credentials:
        _check_credentials(canonical, errors)
    if errors:
        raise DefinitionError(list(errors))
    return canonical


def _step_ids(canonical: dict[str, Any]) -> set[str]:
    return {step["id"] for step in canonical["steps"] if isinstance(step.get("id"), str)}


def _slug(value: Any, errors: _Errors) -> str:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        errors.add(None, "slug", "must be lower-case letters, digits, '-' or '_' (1-100)")
        return value if isinstance(value, str) else ""
    return value


def _text(raw: dict, name: str, default: str, limit: int, errors: _Errors) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or len(value) > limit:
        errors.add(None, name, f"must be a string of at most {limit} characters")
        return default
    return value


def _input_schema(schema: Any, errors: _Errors) -> Any:
    if not isinstance(schema, dict):
        errors.add(None, "input_schema", "must be a JSON Schema object")
        return schema
    try:
        validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        errors.add(None, "input_schema", f"not a valid JSON Schema at /{path}: {exc.message}")
    if schema.get("type", "object") != "object":
        errors.add(None, "input_schema", "the input is an object: type must be 'object'")
    return schema


def _workflow_policies(raw: Any, errors: _Errors) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors.add(None, "policies", "must be an object")
        return dict(WORKFLOW_POLICY_DEFAULTS)
    # `retention` is optional and gets no default, so definitions without it keep their hash.
    _unknown(raw, set(WORKFLOW_POLICY_DEFAULTS) | {"retention"}, errors, None, "policies.")
    policies = {**WORKFLOW_POLICY_DEFAULTS, **raw}
    timeout = policies["timeout_seconds"]
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= MAX_SECONDS):
        errors.add(
            None, "policies.timeout_seconds", f"must be null or 0 < seconds <= {MAX_SECONDS}"
        )
    budget = policies["max_step_executions"]
    if not _is_int(budget) or not 1 <= budget <= 100_000:
        errors.add(None, "policies.max_step_executions", "must be an integer from 1 to 100000")
    concurrency = policies["concurrency"]
    if concurrency is not None and (not _is_int(concurrency) or not 1 <= concurrency <= 10_000):
        errors.add(None, "policies.concurrency", "must be null or an integer from 1 to 10000")
    if not isinstance(policies["queue"], str) or not QUEUE_RE.match(policies["queue"]):
        errors.add(None, "policies.queue", "must be 1-100 letters, digits, '_', '.' or '-'")
    if not isinstance(policies["allow_private_network"], bool):
        errors.add(None, "policies.allow_private_network", "must be true or false")
    if "retention" in policies:
        _retention(policies["retention"], errors)
    return policies


def _retention(raw: Any, errors: _Errors) -> None:
    """{"days": N | null, "count": N | null}: how long and how many finished runs to keep
    (manage.py pruneruns); a missing key falls back to the settings, null means no limit."""
    if not isinstance(raw, dict):
        errors.add(None, "policies.retention", 'must be an object like {"days": 30, "count": 1000}')
        return
    _unknown(raw, {"days", "count"}, errors, None, "policies.retention.")
    for key, most in (("days", 36500), ("count", 1_000_000)):
        value = raw.get(key)
        if value is not None and (type(value) is not int or not 1 <= value <= most):
            errors.add(
                None, f"policies.retention.{key}", f"must be null or an integer from 1 to {most}"
            )


def _steps(raw: Any, workflow_policies: dict, errors: _Errors) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        errors.add(None, "steps", "must be a non-empty list of steps")
        return []
    if len(raw) > MAX_STEPS:
        errors.add(None, "steps", f"at most {MAX_STEPS} steps")
        return []
    steps, seen = [], set()
    for index, item in enumerate(raw):
        step = _step(index, item, errors)
        if step is None:
            continue
        if step["id"] in seen:
            errors.add(step["id"], "id", "is used by another step")
        seen.add(step["id"])
        steps.append(step)
    return steps


def _step(index: int, raw: Any, errors: _Errors) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        errors.add(None, f"steps[{index}]", "must be an object")
        return None
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
        name = step_id if isinstance(step_id, str) else f"steps[{index}]"
        errors.add(name, "id", "must match [a-z][a-z0-9_]{0,62}")
        step_id = name
    _unknown(raw, STEP_FIELDS, errors, step_id, "")
    step = {
        "id": step_id,
        "type": raw.get("type"),
        "config": raw.get("config", {}),
        "depends_on": raw.get("depends_on", []),
        "policies": _step_policies(step_id, raw.get("policies", {}), errors),
        "when": raw.get("when"),
    }
    depends_on = step["depends_on"]
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        errors.add(step_id, "depends_on", "must be a list of step ids")
        step["depends_on"] = []
    elif len(set(depends_on)) != len(depends_on):
        errors.add(step_id, "depends_on", "lists a step twice")
    if step["when"] is not None and not isinstance(step["when"], str):
        errors.add(step_id, "when", "must be null or an expression")
    if step["when"] is not None and isinstance(step["when"], str) and "{{" not in step["when"]:
        step["when"] = "{{ " + step["when"] + " }}"
    _node_config(step, errors)
    return step


def _node_config(step: dict[str, Any], errors: _Errors) -> None:
    node = get_node_type(step["type"]) if isinstance(step["type"], str) else None
    if node is None:
        errors.add(step["id"], "type", f"unknown node type; known: {', '.join(node_type_names())}")
        return
    if not isinstance(step["config"], dict):
        errors.add(step["id"], "config", "must be an object")
        return
    normalize = getattr(node, "normalize_config", None)
    if normalize is not None:
        step["config"] = normalize(step["config"])
    for field, message in node.validate_config(step["config"]):
        errors.add(step["id"], f"config.{field}", message)


def _step_policies(step_id: str, raw: Any, errors: _Errors) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors.add(step_id, "policies", "must be an object")
        raw = {}
    _unknown(raw, {"retries", "timeout_seconds", "idempotent"}, errors, step_id, "policies.")
    policies = {**STEP_POLICY_DEFAULTS, **{k: v for k, v in raw.items() if k != "retries"}}
    policies["retries"] = _retries(step_id, raw.get("retries", {}), errors)
    timeout = policies["timeout_seconds"]
    if not _is_number(timeout) or not 0 < timeout <= MAX_SECONDS:
        errors.add(step_id, "policies.timeout_seconds", f"must be 0 < seconds <= {MAX_SECONDS}")
    if policies["idempotent"] is not None and not isinstance(policies["idempotent"], bool):
        errors.add(step_id, "policies.idempotent", "must be null, true or false")
    return policies


def _retries(step_id: str, raw: Any, errors: _Errors) -> dict[str, Any]:
    field = "policies.retries"
    if _is_int(raw):  # shorthand: "retries": 3 means three attempts in all
        raw = {"max_attempts": raw}
    if not isinstance(raw, dict):
        errors.add(step_id, field, "must be an object or a number of attempts")
        return dict(RETRY_DEFAULTS)
    _unknown(raw, set(RETRY_DEFAULTS), errors, step_id, f"{field}.")
    retries = {**RETRY_DEFAULTS, **raw}
    if not _is_int(retries["max_attempts"]) or not 1 <= retries["max_attempts"] <= 100:
        errors.add(step_id, f"{field}.max_attempts", "must be an integer from 1 to 100")
    if retries["backoff"] not in BACKOFFS:
        errors.add(step_id, f"{field}.backoff", f"must be one of {', '.join(BACKOFFS)}")
    for name in ("delay_seconds", "max_delay_seconds"):
        if not _is_number(retries[name]) or not 0 <= retries[name] <= 86400:
            errors.add(step_id, f"{field}.{name}", "must be a number of seconds from 0 to 86400")
        else:
            retries[name] = float(retries[name])
    delays = (retries["delay_seconds"], retries["max_delay_seconds"])
    if all(_is_number(d) for d in delays) and delays[1] < delays[0]:
        errors.add(step_id, f"{field}.max_delay_seconds", "must be at least delay_seconds")
    if not isinstance(retries["jitter"], bool):
        errors.add(step_id, f"{field}.jitter", "must be true or false")
    retry_on = retries["retry_on"]
    if not isinstance(retry_on, list) or any(kind not in RETRY_KINDS for kind in retry_on):
        errors.add(step_id, f"{field}.retry_on", f"must be a list of {', '.join(RETRY_KINDS)}")
    else:
        retries["retry_on"] = sorted(set(retry_on))
    return retries


def _check_graph(steps: list[dict[str, Any]], errors: _Errors) -> None:
    """Dependencies exist, there is no cycle, and expressions only read ancestors' outputs."""
    ids = {step["id"] for step in steps}
    parents = {step["id"]: [d for d in step["depends_on"] if d in ids] for step in steps}
    for step in steps:
        for dep in step["depends_on"]:
            if dep == step["id"]:
                errors.add(step["id"], "depends_on", "a step cannot depend on itself")
            elif dep not in ids:
                errors.add(step["id"], "depends_on", f"unknown step {dep!r}")
    cycle = _find_cycle(parents)
    if cycle:
        path = " -> ".join(cycle)
        errors.add(cycle[0], "depends_on", f"dependency cycle: {path}")
        return
    ancestors = _ancestors(parents)
    for step in steps:
        allowed = ancestors.get(step["id"], set())
        _check_templates(step["id"], "config", step["config"], allowed, errors, ids)
        if isinstance(step["when"], str):
            _check_templates(step["id"], "when", step["when"], allowed, errors, ids)
        _check_branch_targets(step, parents, errors)


def _find_cycle(parents: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in parents:
        if state.get(start):
            continue
        stack = [(start, iter(parents[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(parents[child])))
                path.append(child)
    return None


def _ancestors(parents: dict[str, list[str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def visit(node: str) -> set[str]:
        if node not in found:
            found[node] = set()
            for parent in parents[node]:
                found[node] |= {parent} | visit(parent)
        return found[node]

    for node in parents:
        stack = [node]  # iterative warm-up keeps recursion shallow on long chains
        while stack:
            current = stack[-1]
            pending = [p for p in parents[current] if p not in found]
            if pending:
                stack.extend(pending)
            else:
                visit(current)
                stack.pop()
    return found


def _check_templates(
    step: str | None,
    field: str,
    value: Any,
    allowed: set[str],
    errors: _Errors,
    ids: set[str] | None = None,
) -> None:
    """Every expression in `value` is valid and reads only steps in `allowed`."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_templates(step, f"{field}.{key}", item, allowed, errors, ids)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_templates(step, f"{field}[{index}]", item, allowed, errors, ids)
    elif isinstance(value, str) and "{{" in value:
        problems = expressions.validate_template(value)
        for message in problems:
            errors.add(step, field, message)
        if problems:
            return
        for ref in sorted(expressions.references(value) - allowed):
            if ids is None or ref not in ids:
                errors.add(step, field, f"refers to steps.{ref}, which is not a step")
            else:
                errors.add(
                    step, field, f"refers to steps.{ref}, which is not an ancestor (depends_on)"
                )


def _check_branch_targets(step: dict, parents: dict[str, list[str]], errors: _Errors) -> None:
    targets = getattr(get_node_type(step["type"]), "targets", None)
    if targets is None or not isinstance(step["config"], dict):
        return
    dependents = {child for child, deps in parents.items() if step["id"] in deps}
    for field, step_ids in targets(step["config"]):
        for target in step_ids:
            if target not in dependents:
                errors.add(
                    step["id"],
                    f"config.{field}",
                    f"{target!r} is not a step that depends directly on this branch",
                )


def _check_credentials(canonical: dict[str, Any], errors: _Errors) -> None:
    """Every credential a step names exists and this workflow may use it."""
    for step in canonical["steps"]:
        node = get_node_type(step["type"])
        refs = getattr(node, "credential_references", None)
        if refs is None:
            continue
        found = refs(step["config"])
        if not found:
            continue
        # Imported here: credentials depends on workflows, not the other way round.
        from credentials.services import check_reference

        for field, name in found:
            message = check_reference(name, canonical["slug"])
            if message:
                errors.add(step["id"], f"config.{field}", message)
