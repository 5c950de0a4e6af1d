"""`python`: call a function registered from project code, in the executor.

Only registered functions can be called: a definition names `"demo.generate_numbers"`, never an
arbitrary import path. `flows.py` modules register the functions their workflows use (the DSL
does it for them, or `@workflows.flows.function`).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from workflows.nodes.base import NodeType, StepContext, StepError
from workflows.nodes.config import check_fields, is_expression
from workflows.nodes.registry import register_node_type

_functions: dict[str, Callable[..., Any]] = {}


def function_name(fn: Callable[..., Any]) -> str:
    """The default registered name: the top-level package and the function's name."""
    return f"{fn.__module__.split('.')[0]}.{fn.__qualname__}"


def register_function(fn: Callable[..., Any], name: str | None = None) -> str:
    """Make `fn` callable by `python` steps as `name` (default `function_name(fn)`)."""
    name = name or function_name(fn)
    existing = _functions.get(name)
    if existing is not None and existing is not fn:
        same = (existing.__module__, existing.__qualname__) == (fn.__module__, fn.__qualname__)
        if not same:  # a module reloaded in development registers a new object: that is fine
            raise ValueError(f"function name {name!r} is already registered for {existing!r}")
    _functions[name] = fn
    return name


def get_function(name: str) -> Callable[..., Any] | None:
    return _functions.get(name)


def registered_functions() -> list[str]:
    return sorted(_functions)


def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        return _signature_has_ctx(fn)
    except TypeError:  # not hashable: look every time
        return _signature_has_ctx.__wrapped__(fn)


@lru_cache(maxsize=1024)
def _signature_has_ctx(fn: Callable[..., Any]) -> bool:
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@register_node_type
class PythonNode(NodeType):
    """Config: `{"function": "demo.generate_numbers", "args": {...}}`. The function gets the
    rendered args as keyword arguments (plus `ctx`, the `StepContext`, when it declares one)
    and returns the step's JSON output."""

    name = "python"
    idempotent_by_default = True

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problems = check_fields(config, required={"function"}, optional={"args"})
        name = config.get("function")
        if "function" in config:
            if not isinstance(name, str):
                problems.append(("function", "must be the registered name of a function"))
            elif get_function(name) is None:
                problems.append(("function", f"no registered function named {name!r}"))
        args = config.get("args", {})
        if not isinstance(args, dict) and not is_expression(args):
            problems.append(("args", "must be an object of keyword arguments"))
        elif isinstance(args, dict):
            problems += [
                (f"args.{key}", "must be a Python identifier not starting with '_'")
                for key in args
                if not key.isidentifier() or key.startswith("_") or key == "ctx"
            ]
        return problems

    def execute(self, ctx: StepContext) -> Any:
        name = ctx.config.get("function")
        fn = get_function(name) if isinstance(name, str) else None
        if fn is None:
            raise StepError(f"no registered function named {name!r}", retryable=False)
        args = ctx.config.get("args") or {}
        if not isinstance(args, dict):
            raise StepError("args must be an object of keyword arguments", retryable=False)
        if _wants_context(fn):
            args = {**args, "ctx": ctx}
        try:
            result = fn(**args)
        except StepError:
            raise
        except Exception as exc:
            raise StepError(f"{name} raised {type(exc).__name__}: {exc}") from exc
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise StepError(
                f"{name} returned a value that is not JSON: {exc}", retryable=False
            ) from exc
        return result
