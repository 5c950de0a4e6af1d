"""`script`: operator-supplied Python or shell, run through the run adapter.

Config: `{"language": "python" | "shell", "source": "...", "input": <any JSON, given on
stdin>, "env": {"NAME": "value"}, "credentials": {"ENV_VAR": "credential.field"},
"memory_limit_mb": 512}`. The output is the last line of stdout when it is JSON, else
`{"stdout": ..., "exit_code": ...}`; a non-zero exit fails the step.
"""

from __future__ import annotations

import json
import re
from typing import Any

from workflows.nodes.base import NodeType, StepContext, StepError, StepTimeout
from workflows.nodes.config import (
    check_fields,
    check_number,
    check_rendered,
    check_str_map,
    workflow_slug,
)
from workflows.nodes.registry import register_node_type

LANGUAGES = ("python", "shell")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
RESERVED_ENV = {"PATH", "HOME", "LANG"}
MAX_SOURCE = 200_000
DEFAULT_TIMEOUT = 60.0


def _parse_credential_ref(ref: Any) -> tuple[str, str] | None:
    if not isinstance(ref, str) or ref.count(".") != 1:
        return None
    name, field = ref.split(".")
    return (name, field) if name and field else None


def _env_problems(config: dict[str, Any], name: str) -> list[tuple[str, str]]:
    value = config.get(name)
    if not isinstance(value, dict):
        return []
    return [
        (f"{name}.{key}", "must be an environment variable name, not PATH, HOME or LANG")
        for key in value
        if not ENV_NAME_RE.match(key) or key in RESERVED_ENV
    ]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _output(stdout: str, exit_code: int | None) -> Any:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    return {"stdout": stdout, "exit_code": exit_code}


@register_node_type
class ScriptNode(NodeType):
    name = "script"

    def validate_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        problems = check_fields(
            config,
            required={"source"},
            optional={"language", "input", "env", "credentials", "memory_limit_mb"},
        )
        if config.get("language", "python") not in LANGUAGES:
            problems.append(("language", f"must be one of {', '.join(LANGUAGES)}"))
        source = config.get("source")
        if "source" in config and (not isinstance(source, str) or not source.strip()):
            problems.append(("source", "must be non-empty text"))
        elif isinstance(source, str) and len(source) > MAX_SOURCE:
            problems.append(("source", f"at most {MAX_SOURCE} characters"))
        problems += check_str_map(config, "env") + _env_problems(config, "env")
        problems += check_str_map(config, "credentials") + _env_problems(config, "credentials")
        for key, ref in _mapping(config.get("credentials")).items():
            if isinstance(ref, str) and _parse_credential_ref(ref) is None:
                problems.append((f"credentials.{key}", "must be 'credential_name.field'"))
        problems += check_number(config, "memory_limit_mb", low=32, high=16384, integer=True)
        return problems

    def credential_references(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        found = []
        for key, ref in _mapping(config.get("credentials")).items():
            parsed = _parse_credential_ref(ref)
            if parsed:
                found.append((f"credentials.{key}", parsed[0]))
        return found

    def _environment(self, ctx: StepContext) -> tuple[dict[str, str], tuple[Any, ...]]:
        """The script's environment and the credentials it resolved (for a sidecar)."""
        env = {key: _env_value(value) for key, value in (ctx.config.get("env") or {}).items()}
        refs = ctx.config.get("credentials") or {}
        if not refs:
            return env, ()
        # Imported here: the credentials app is optional to this module and built separately.
        from credentials.exceptions import CredentialError
        from credentials.services import resolve

        slug = workflow_slug(ctx)
        by_name: dict[str, list[tuple[str, str]]] = {}
        credentials = []
        for var, ref in refs.items():
            name, field = _parse_credential_ref(ref) or ("", "")
            by_name.setdefault(name, []).append((var, field))
        for name, wanted in by_name.items():
            try:
                resolved = resolve(name, workflow_slug=slug)
                values = resolved.env([field for _, field in wanted])
            except CredentialError as exc:
                raise StepError(str(exc), retryable=False) from exc
            ctx.secrets |= resolved.secrets
            credentials.append(resolved)
            env.update({var: values[field] for var, field in wanted})
        return env, tuple(credentials)

    def execute(self, ctx: StepContext) -> Any:
        from infra.registry import get_run_adapter
        from infra.runners.base import ScriptSpec

        config = ctx.config
        if isinstance(config.get("env"), dict):
            # An expression may give a number or an object: the environment holds its JSON.
            config = {**config, "env": {k: _env_value(v) for k, v in config["env"].items()}}
        check_rendered(self, config)
        env, credentials = self._environment(ctx)
        spec = ScriptSpec(
            language=config.get("language", "python"),
            source=config["source"],
            env=env,
            stdin=json.dumps(config["input"]) if "input" in config else "",
            timeout_seconds=ctx.timeout_seconds or DEFAULT_TIMEOUT,
            memory_limit_mb=config.get("memory_limit_mb", 512),
            credentials=credentials,
            allow_private_network=bool(ctx.workflow_policies.get("allow_private_network")),
        )
        result = get_run_adapter().run_script(spec, cancel=ctx.cancel, log=ctx.log)
        if result.cancelled:
            raise StepError("cancelled: the script was killed", retryable=False)
        if result.timed_out:
            raise StepTimeout(f"timed out after {spec.timeout_seconds:g} s: the script was killed")
        if result.exit_code != 0:
            tail = (result.stderr or result.stdout).strip()[-2000:]
            raise StepError(f"exit code {result.exit_code}: {tail}")
        return _output(result.stdout, result.exit_code)


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
