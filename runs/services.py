"""The run use cases: start, cancel, retry, resume and execute (docs/architecture.md, Runs)."""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction
from django.utils import timezone

from runs.engine.claims import (
    claim_run,
    executing_here,
    finalize_run,
    process_executor_id,
    submit_next_queued,
)
from runs.engine.db import insert_run, insert_run_with_event, write_transaction
from runs.engine.execution import RunExecution
from runs.events import Reservation, insert_events, publish_messages
from runs.exceptions import InvalidInput, RunNotCancellable, RunNotRetryable, WorkflowUnavailable
from runs.models import Run, StepRun
from workflows.models import Workflow, WorkflowVersion

logger = logging.getLogger("runs")

MAX_IDEMPOTENCY_KEY_LENGTH = 200


def start_run(
    workflow: Workflow,
    *,
    input: dict[str, Any] | None = None,
    trigger: str = Run.Trigger.MANUAL,
    triggered_by: Any = None,
    idempotency_key: str | None = None,
    schedule: Any = None,
    parent_run: Run | None = None,
    parent_step: str = "",
    origin_run: Run | None = None,
    version: WorkflowVersion | None = None,
    submit: bool = True,
) -> Run:
    """Create a queued run pinned to the workflow's current version and hand it to the executor.

    Returns at once. The same idempotency key for the same workflow returns the existing run.
    `submit=False` leaves the run for the caller to execute (a sub-workflow step does).
    """
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key.strip():
            raise InvalidInput(
                "the idempotency key must be a non-empty string",
                errors=[{"field": "idempotency_key", "message": "must be a non-empty string"}],
            )
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidInput(
                f"the idempotency key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
                errors=[{"field": "idempotency_key", "message": "too long"}],
            )
        existing = Run.objects.filter(workflow=workflow, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    version = version or _runnable_version(workflow)
    input = validate_input(version.definition, input)
    run = Run(
        workflow=workflow,
        version=version,
        input=input,
        trigger=trigger,
        triggered_by=triggered_by,
        idempotency_key=idempotency_key,
        schedule=schedule,
        parent_run=parent_run,
        parent_step=parent_step,
        origin_run=origin_run,
        last_event_seq=1,  # the run is new, so its first event is number 1: no counter to bump
    )
    payload = {"trigger": trigger, "version": version.number}
    from infra.registry import get_executor

    executor = get_executor() if submit else None
    if executor is not None and executor.dispatches_messages:
        run.dispatched_at = timezone.now()  # stamped with the insert, not by a statement more
    try:
        messages = insert_run_with_event(run, payload)  # one statement where it can
        if messages is not None:
            publish_messages(messages)
            if executor is not None:
                _submit_new(executor, run.pk, version.definition, run.dispatched_at)
            return run
        with write_transaction():
            insert_run(run)
            insert_events(run.pk, Reservation(1, run.status, "", 0), [("run.queued", payload)])
            if executor is not None:
                # An executor must never receive an id whose row is not committed yet.
                transaction.on_commit(
                    partial(_submit_new, executor, run.pk, version.definition, run.dispatched_at)
                )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # Another request with the same key won the race: return its run.
        return Run.objects.get(workflow=workflow, idempotency_key=idempotency_key)
    return run


def _submit_new(executor: Any, run_id: int, definition: dict, dispatched_at: Any) -> None:
    executor.submit_new(run_id, definition=definition, dispatched_at=dispatched_at)


def _submit(run_id: int) -> None:
    from infra.registry import get_executor

    get_executor().submit(run_id)


def _runnable_version(workflow: Workflow) -> WorkflowVersion:
    if not workflow.enabled or workflow.retired:
        state = "retired" if workflow.retired else "disabled"
        raise WorkflowUnavailable(f"workflow {workflow.slug!r} is {state} and accepts no runs")
    if workflow.current_version_id is None:
        raise WorkflowUnavailable(f"workflow {workflow.slug!r} has no valid definition yet")
    return workflow.current_version


def validate_input(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """Check the input against the version's input schema; fill top-level defaults."""
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise InvalidInput(f"the input must be a JSON object, not {type(input).__name__}")
    schema = definition.get("input_schema") or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict):
        defaults = {
            key: prop["default"]
            for key, prop in properties.items()
            if isinstance(prop, dict) and "default" in prop and key not in input
        }
        input = {**defaults, **input}
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(input), key=lambda e: list(e.path)
    )
    if errors:
        problems = [
            {"field": "input" + "".join(f"[{p!r}]" for p in error.path), "message": error.message}
            for error in errors[:20]
        ]
        raise InvalidInput(
            "; ".join(f"{p['field']}: {p['message']}" for p in problems), errors=problems
        )
    return input


def cancel_run(run: Run, *, by: Any = None) -> Run:
    """Finish a queued or running run as cancelled, at once, and stop whatever executes it.

    The executor learns of it through the pub-sub port (and its heartbeat, as a fallback),
    kills a running script and stops between steps. Child runs are cancelled too.
    """
    who = getattr(by, "get_username", lambda: "")() if by is not None else ""
    now = timezone.now()
    won = finalize_run(
        run.pk,
        Run.Status.CANCELLED,
        error=f"cancelled by {who}" if who else "cancelled",
        payload={"by": who} if who else {},
        extra={"cancel_requested_at": now},
    )
    if not won:
        run.refresh_from_db()
        raise RunNotCancellable(f"run {run.pk} is already {run.status}")
    StepRun.objects.filter(
        run=run, status__in=[StepRun.Status.PENDING, StepRun.Status.RETRYING]
    ).update(status=StepRun.Status.CANCELLED, finished_at=now)
    for child in Run.objects.filter(parent_run=run, status__in=Run.ACTIVE_STATUSES):
        with contextlib.suppress(RunNotCancellable):
            cancel_run(child, by=by)
    from infra.registry import get_pubsub

    get_pubsub().publish_cancel(run.pk)
    run.refresh_from_db()
    return run


def retry_run(run: Run, *, by: Any = None) -> Run:
    """Start the workflow again, from the beginning, with the same input (current version)."""
    if not run.is_final:
        raise RunNotRetryable(f"run {run.pk} is still {run.status}")
    return start_run(
        run.workflow,
        input=run.input,
        trigger=Run.Trigger.RETRY,
        triggered_by=by,
        origin_run=run,
    )


def resume_run(run: Run, *, by: Any = None) -> Run:
    """Start a new run on the same version that keeps the steps `run` completed and executes
    the rest: resume from the failed step."""
    if not run.is_final or run.status == Run.Status.SUCCEEDED:
        raise RunNotRetryable(
            f"run {run.pk} is {run.status}; only a run that did not succeed resumes"
        )
    with write_transaction():
        new = start_run(
            run.workflow,
            input=run.input,
            trigger=Run.Trigger.RESUME,
            triggered_by=by,
            origin_run=run,
            version=run.version,
            submit=False,
        )
        kept = run.steps.filter(status__in=[StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED])
        StepRun.objects.bulk_create(
            StepRun(
                run=new,
                step_id=step.step_id,
                node_type=step.node_type,
                status=step.status,
                attempt=step.attempt,
                input=step.input,
                output=step.output,
                logs=step.logs,
                started_at=step.started_at,
                finished_at=step.finished_at,
                duration_ms=step.duration_ms,
            )
            for step in kept
        )
        transaction.on_commit(partial(_submit, new.pk))
    return new


def execute_run(run_id: int, *, executor_id: str | None = None) -> None:
    """Claim the run and execute it to the end in this thread. Safe to call twice: a run that is
    final, owned by a live executor or held back by its concurrency limit is left alone."""
    executor_id = executor_id or process_executor_id()
    with executing_here(run_id) as ours:
        if ours:
            _claim_and_execute(run_id, executor_id)


def _claim_and_execute(run_id: int, executor_id: str) -> None:
    claimed = claim_run(run_id, executor_id, defer=True)
    if claimed is None:
        return
    run, resumed = claimed
    # Only a run fresh from the queue may skip looking for step rows: a resume_run() run has
    # the steps it kept, a run created elsewhere may have some.
    claim = getattr(run, "pending_claim", None)  # written with the run's first steps
    if claim is None:
        has_steps = getattr(run, "has_steps", None)
        if has_steps is None:  # claimed under a concurrency limit: not read with the claim
            has_steps = run.steps.exists()
        fresh = not resumed and run.trigger != Run.Trigger.RESUME and not has_steps
    else:
        fresh = True
    try:
        RunExecution(run, executor_id, fresh=fresh, claim=claim).execute()
    except Exception as exc:
        # A bug in the engine must not leave the run running forever.
        logger.exception("Run %s: the executor failed", run_id)
        finalize_run(
            run_id, Run.Status.FAILED, error=f"internal error: {type(exc).__name__}: {exc}"
        )


__all__ = [
    "cancel_run",
    "execute_run",
    "finalize_run",
    "resume_run",
    "retry_run",
    "start_run",
    "submit_next_queued",
    "validate_input",
]
