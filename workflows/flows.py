"""Declare workflows in Python, in a `flows.py` module of any installed app.

    from workflows.flows import Workflow

    wf = Workflow("demo-pipeline", input_schema={...})
    gen = wf.python("generate", function=generate_numbers, args={"count": "{{ input.count }}"})
    wf.script("transform", source=SOURCE, input=gen.output, depends_on=[gen])

Each `Workflow` registers itself when its module is imported (Django imports every app's
`flows.py` at boot, as it does `admin.py`), and compiles to the same JSON definition as one
written in the console: `compile_definition` validates both. Functions passed to `python`
steps are registered by name (`demo.generate_numbers`), so definitions never name an import path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from workflows.definition import compile_definition
from workflows.nodes.python import register_function

_workflows: dict[str, Workflow] = {}


def function(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a function for `python` steps (default name `package.function`)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        register_function(fn, name)
        return fn

    return decorate


@dataclass(frozen=True)
class StepRef:
    """What adding a step returns: pass it to `depends_on`, read its output in expressions."""

    id: str

    @property
    def output(self) -> str:
        """`"{{ steps.<id>.output }}"`: the step's whole output, with its JSON type."""
        return "{{ steps." + self.id + ".output }}"

    def __str__(self) -> str:
        return self.id


StepLike = StepRef | str


def _ids(steps: Iterable[StepLike] | StepLike | None) -> list[str]:
    if steps is None:
        return []
    if isinstance(steps, StepRef | str):
        steps = [steps]
    return [str(step) for step in steps]


class Workflow:
    """A workflow defined in code. Adding a step returns a `StepRef`."""

    def __init__(
        self,
        slug: str,
        *,
        name: str | None = None,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
        policies: dict[str, Any] | None = None,
        output: Any = None,
        register: bool = True,
    ) -> None:
        self.slug = slug
        self.name = name
        self.description = description
        self.input_schema = input_schema
        self.policies = dict(policies or {})
        self.output = output
        self.steps: list[dict[str, Any]] = []
        self.module = sys._getframe(1).f_globals.get("__name__", "")
        if register:
            existing = _workflows.get(slug)
            if existing is not None and existing.module != self.module:
                raise ValueError(f"workflow {slug!r} is already defined in {existing.module}")
            _workflows[slug] = self

    # -- steps of each built-in type -------------------------------------------------------

    def step(
        self,
        id: str,
        type: str,
        config: dict[str, Any] | None = None,
        *,
        depends_on: Iterable[StepLike] | StepLike | None = None,
        retries: int | dict[str, Any] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        when: str | None = None,
    ) -> StepRef:
        """Add a step of any registered node type."""
        policies: dict[str, Any] = {}
        if retries is not None:
            policies["retries"] = retries
        if timeout is not None:
            policies["timeout_seconds"] = timeout
        if idempotent is not None:
            policies["idempotent"] = idempotent
        step: dict[str, Any] = {"id": id, "type": type, "config": config or {}}
        step["depends_on"] = _ids(depends_on)
        if policies:
            step["policies"] = policies
        if when is not None:
            step["when"] = when
        self.steps.append(step)
        return StepRef(id)

    def python(
        self,
        id: str,
        *,
        function: Callable[..., Any] | str,
        args: dict[str, Any] | None = None,
        **options: Any,
    ) -> StepRef:
        name = function if isinstance(function, str) else register_function(function)
        config: dict[str, Any] = {"function": name}
        if args:
            config["args"] = args
        return self.step(id, "python", config, **options)

    def http(
        self,
        id: str,
        *,
        url: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
        json: Any = None,
        timeout_seconds: float | None = None,
        credential: str | None = None,
        **options: Any,
    ) -> StepRef:
        config: dict[str, Any] = {"method": method, "url": url}
        extras = {
            "headers": headers,
            "body": body,
            "json": json,
            "timeout_seconds": timeout_seconds,
            "credential": credential,
        }
        config.update({key: value for key, value in extras.items() if value is not None})
        return self.step(id, "http", config, **options)

    def script(
        self,
        id: str,
        *,
        source: str,
        language: str = "python",
        input: Any = None,
        env: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
        memory_limit_mb: int | None = None,
        **options: Any,
    ) -> StepRef:
        config: dict[str, Any] = {"language": language, "source": source}
        extras = {
            "input": input,
            "env": env,
            "credentials": credentials,
            "memory_limit_mb": memory_limit_mb,
        }
        config.update({key: value for key, value in extras.items() if value is not None})
        return self.step(id, "script", config, **options)

    def wait(self, id: str, *, seconds: float | str, **options: Any) -> StepRef:
        return self.step(id, "wait", {"seconds": seconds}, **options)

    def branch(
        self,
        id: str,
        *,
        cases: Iterable[tuple[str | bool, Iterable[StepLike] | StepLike]],
        default: Iterable[StepLike] | StepLike | None = None,
        **options: Any,
    ) -> StepRef:
        """`cases`: (condition, step ids to run) pairs, first true wins; ids of the steps that
        will depend on this branch, given as strings since they are added afterwards."""
        config = {
            "cases": [{"when": when, "then": _ids(then)} for when, then in cases],
            "default": _ids(default),
        }
        return self.step(id, "branch", config, **options)

    def workflow(self, id: str, *, workflow: str, input: Any = None, **options: Any) -> StepRef:
        """A sub-workflow run (the `workflow` node type, built by the engine)."""
        config: dict[str, Any] = {"workflow": workflow}
        if input is not None:
            config["input"] = input
        return self.step(id, "workflow", config, **options)

    # -- output ---------------------------------------------------------------------------

    def to_definition(self) -> dict[str, Any]:
        """The raw JSON definition (before defaults), as an operator would write it."""
        raw: dict[str, Any] = {"slug": self.slug, "steps": [dict(s) for s in self.steps]}
        if self.name is not None:
            raw["name"] = self.name
        if self.description:
            raw["description"] = self.description
        if self.input_schema is not None:
            raw["input_schema"] = self.input_schema
        if self.policies:
            raw["policies"] = self.policies
        if self.output is not None:
            raw["output"] = self.output
        return raw

    def compile(self, *, check_credentials: bool = True) -> dict[str, Any]:
        """The canonical definition; `DefinitionError` when invalid."""
        return compile_definition(self.to_definition(), check_credentials=check_credentials)


def code_workflows() -> dict[str, Workflow]:
    """Every workflow declared in the flows.py modules imported so far, by slug."""
    return dict(_workflows)


def unregister(slug: str) -> None:
    """Forget a code workflow (tests that declare throwaway workflows use this)."""
    _workflows.pop(slug, None)
