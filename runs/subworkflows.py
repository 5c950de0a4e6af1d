"""Sub-workflow runs: a `workflow` step starts a child run and executes it in its own thread."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from django.db import connections

from runs.exceptions import InvalidInput, RunNotCancellable, WorkflowUnavailable
from runs.models import Run
from workflows.models import Workflow
from workflows.nodes.base import StepError

# A workflow that (indirectly) calls itself would nest forever.
MAX_DEPTH = 10
POLL_SECONDS = 0.2


def run_subworkflow(
    *, parent_run_id: int, parent_step: str, slug: Any, input: Any, cancel: threading.Event
) -> Any:
    """Start (or re-attach to) the child run of this step, execute it here, return its output."""
    from runs import services

    parent = Run.objects.get(pk=parent_run_id)
    child = _existing_child(parent, parent_step)
    if child is None:
        child = _start_child(parent, parent_step, slug, input)
    stop_watching = _cancel_child_on(cancel, child.pk)
    try:
        while True:
            # The parent's owner executes the child: one executor, one heartbeat for both.
            services.execute_run(child.pk, executor_id=parent.owner)
            child.refresh_from_db()
            if child.is_final or cancel.wait(POLL_SECONDS):
                break
    finally:
        stop_watching.set()
    child.refresh_from_db()
    if child.status == Run.Status.SUCCEEDED:
        return child.output
    if not child.is_final:
        raise StepError(
            f"cancelled while sub-workflow run {child.pk} was {child.status}", retryable=False
        )
    raise StepError(
        f"sub-workflow {child.workflow.slug!r} run {child.pk} {child.status}: {child.error}",
        retryable=child.status != Run.Status.CANCELLED,
    )


def _existing_child(parent: Run, parent_step: str) -> Run | None:
    """The child a previous attempt (or a crashed executor) started and that can still help."""
    child = Run.objects.filter(parent_run=parent, parent_step=parent_step).order_by("-id").first()
    if child is None or child.status in (
        Run.Status.FAILED,
        Run.Status.CANCELLED,
        Run.Status.TIMED_OUT,
    ):
        return None  # none yet, or this attempt is a retry: start afresh
    return child


def _start_child(parent: Run, parent_step: str, slug: Any, input: Any) -> Run:
    from runs import services

    if _depth(parent) >= MAX_DEPTH:
        raise StepError(f"sub-workflows nest deeper than {MAX_DEPTH} levels", retryable=False)
    workflow = Workflow.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if workflow is None:
        raise StepError(f"no workflow with the slug {slug!r}", retryable=False)
    try:
        return services.start_run(
            workflow,
            input=input,
            trigger=Run.Trigger.WORKFLOW,
            triggered_by=parent.triggered_by,
            parent_run=parent,
            parent_step=parent_step,
            submit=False,
        )
    except (InvalidInput, WorkflowUnavailable) as exc:
        raise StepError(f"cannot start sub-workflow {slug!r}: {exc}", retryable=False) from exc


def _depth(run: Run) -> int:
    depth, parent_id = 0, run.parent_run_id
    while parent_id is not None and depth <= MAX_DEPTH:
        depth += 1
        parent_id = Run.objects.filter(pk=parent_id).values_list("parent_run_id", flat=True).first()
    return depth


def _cancel_child_on(cancel: threading.Event, child_id: int) -> threading.Event:
    """When the parent's step is cancelled (run cancel, timeout), cancel the child run too."""
    done = threading.Event()

    def watch() -> None:
        try:
            while not done.is_set():
                if cancel.wait(POLL_SECONDS):
                    from runs.services import cancel_run

                    # Already final, or deleted meanwhile (pruned): nothing left to cancel.
                    with contextlib.suppress(RunNotCancellable, Run.DoesNotExist):
                        cancel_run(Run.objects.get(pk=child_id))
                    return
        finally:
            connections.close_all()

    threading.Thread(target=watch, name=f"subworkflow-{child_id}", daemon=True).start()
    return done
