"""What the API and webhook views do, once a request is parsed: start runs, serialise them."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from api.errors import ApiError
from api.parsing import short as _short
from runs.models import Run, RunEvent
from workflows.models import WebhookTrigger, Workflow


def start_api_run(
    workflow: Workflow,
    *,
    user: AbstractBaseUser,
    input: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[Run, bool]:
    """Start a run for an API caller; return it and whether it was created by this call.

    Keys are scoped to the user, so two users who pick the same key never see each other's run.
    """
    key = f"api:{user.pk}:{idempotency_key}" if idempotency_key else None
    return _start(workflow, input=input, trigger=Run.Trigger.API, user=user, key=key)


def start_webhook_run(
    trigger: WebhookTrigger,
    *,
    input: dict[str, Any],
    delivery_id: str | None,
    signature: str | None,
) -> tuple[Run, bool]:
    """Start a run for a webhook delivery; a repeated delivery returns the run it started.

    Without a delivery id a signed request is keyed on its signature, so replaying it inside
    the timestamp window starts nothing new either.
    """
    if delivery_id:
        key = f"webhook:{trigger.pk}:{delivery_id}"
    elif signature:
        key = f"webhook:{trigger.pk}:sig:{signature}"
    else:
        key = None
    return _start(trigger.workflow, input=input, trigger=Run.Trigger.WEBHOOK, user=None, key=key)


def _start(
    workflow: Workflow,
    *,
    input: dict[str, Any],
    trigger: str,
    user: AbstractBaseUser | None,
    key: str | None,
) -> tuple[Run, bool]:
    from runs.exceptions import InvalidInput, WorkflowUnavailable
    from runs.services import start_run

    if key:
        existing = Run.objects.filter(workflow=workflow, idempotency_key=key).first()
        if existing is not None:
            return existing, False
    try:
        run = start_run(
            workflow, input=input, trigger=trigger, triggered_by=user, idempotency_key=key
        )
    except InvalidInput as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors:
            field = str(error.get("field", "input"))[:200]
            fields.setdefault(field, []).append(_short(str(error.get("message", ""))))
        raise ApiError(422, "invalid_input", _short(str(exc), 1000), fields=fields) from None
    except WorkflowUnavailable as exc:
        raise ApiError(409, "workflow_unavailable", str(exc)) from None
    return run, True


def cancel_api_run(run: Run, *, user: AbstractBaseUser) -> Run:
    from runs.exceptions import RunNotCancellable
    from runs.services import cancel_run

    try:
        return cancel_run(run, by=user)
    except RunNotCancellable:
        raise ApiError(409, "run_final", f"Run {run.pk} is already {run.status}.") from None


def new_webhook_token() -> str:
    """The secret part of a webhook URL: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A signing secret for HMAC-SHA256 webhook signatures."""
    return "whsec_" + secrets.token_urlsafe(32)


def workflow_data(workflow: Workflow) -> dict[str, Any]:
    version = workflow.current_version
    return {
        "slug": workflow.slug,
        "name": workflow.name,
        "description": workflow.description,
        "enabled": workflow.enabled,
        "version": version.number if version else None,
        "input_schema": (version.definition.get("input_schema") if version else None),
    }


def run_data(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "workflow": run.workflow.slug,
        "version": run.version.number,
        "status": run.status,
        "trigger": run.trigger,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "steps": [
            {
                "step_id": step.step_id,
                "node_type": step.node_type,
                "status": step.status,
                "attempt": step.attempt,
                "output": step.output,
                "error": step.error,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "duration_ms": step.duration_ms,
            }
            for step in run.steps.all()
        ],
    }


def events_after(run: Run, *, after: int, limit: int) -> dict[str, Any]:
    rows = list(RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[: limit + 1])
    page = rows[:limit]
    return {
        "events": [
            {"seq": e.seq, "type": e.type, "payload": e.payload, "created_at": e.created_at}
            for e in page
        ],
        "next_after": page[-1].seq if page else after,
        "has_more": len(rows) > limit,
    }
