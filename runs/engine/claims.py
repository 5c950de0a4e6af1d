"""Who executes a run: claiming (queued or orphaned), the per-workflow concurrency limit, and
the one conditional UPDATE that finishes a run exactly once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from credentials.masking import mask
from runs.engine.db import write_transaction
from runs.engine.pg import fetch_one
from runs.engine.writes import ClaimWrite, claim_without_limit, finalize_without_django
from runs.events import append_events
from runs.models import Run, StepRun
from workflows.models import Workflow, WorkflowVersion

logger = logging.getLogger("runs")

_executor_ids: dict[int, str] = {}
_executing: set[int] = set()
_executing_lock = threading.Lock()


@contextmanager
def executing_here(run_id: int) -> Iterator[bool]:
    """Yields False when a thread of this process is executing the run already (its claim may
    not be written yet: see execution.LAZY_CLAIM_SECONDS), else True for the block's length."""
    with _executing_lock:
        taken = run_id in _executing
        _executing.add(run_id)
    try:
        yield not taken
    finally:
        if not taken:
            with _executing_lock:
                _executing.discard(run_id)


def process_executor_id() -> str:
    """This process's executor id: host, pid and a random part, so a restarted process with a
    recycled pid never passes for the dead one."""
    pid = os.getpid()
    if pid not in _executor_ids:
        _executor_ids[pid] = f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"
    return _executor_ids[pid]


def workflow_policies(run: Run) -> dict[str, Any]:
    return (run.version.definition or {}).get("policies") or {}


def run_timeout_seconds(run: Run) -> float:
    configured = workflow_policies(run).get("timeout_seconds")
    limit = float(settings.RUN_MAX_TIMEOUT_SECONDS)
    return min(float(configured), limit) if configured else limit


def orphan_cutoff():
    return timezone.now() - timedelta(seconds=settings.ORPHAN_AFTER_SECONDS)


def claim_run(run_id: int, executor_id: str, *, defer: bool = False) -> tuple[Run, bool] | None:
    """Take ownership of a queued run, or of a running one whose executor stopped heartbeating.

    Returns (run, resumed) or None when the run is not ours to execute: already final, owned by
    a live executor, locked by a concurrent claim, or held back by the workflow's concurrency
    limit (it stays queued and is submitted again when a slot frees up).

    With `defer`, a claim that needs no lock (no concurrency limit) is not written here: it is
    left on `run.pending_claim` for the run's first flush, which may still lose it.
    """
    # A plain read first: most calls for runs that are done or busy end here, without a write.
    run = read_run_for_claim(run_id)
    if run is None:
        return None
    if not _may_claim(run, executor_id):
        return None
    if workflow_policies(run).get("concurrency") or connection.in_atomic_block:
        return _claim_checking_capacity(run_id, executor_id)
    resumed = run.status == Run.Status.RUNNING
    payload = {"executor": executor_id}
    if resumed:
        payload["resumed_from"] = run.owner
    now = timezone.now()
    deadline_at = run.deadline_at or now + timedelta(seconds=run_timeout_seconds(run))
    new_steps = None
    if not resumed and not run.has_steps and run.trigger != Run.Trigger.RESUME:
        # Fresh from the queue: its step rows are created with the claim.
        new_steps = [(step["id"], step["type"]) for step in run.version.definition["steps"]]
    claim = ClaimWrite(executor_id, orphan_cutoff(), deadline_at, payload, new_steps)
    run.pending_claim = None
    if defer and new_steps is not None:
        run.pending_claim = claim
    elif not claim_without_limit(run_id, claim):
        return None
    if new_steps is not None:
        run.has_steps = True
    if resumed:
        logger.warning(
            "Run %s: executor %s went silent; %s takes over", run.pk, run.owner, executor_id
        )
    run.status, run.owner, run.heartbeat_at = Run.Status.RUNNING, executor_id, now
    run.started_at = run.started_at or now
    run.deadline_at = deadline_at
    return run, resumed


def read_run_for_claim(run_id: int) -> Run | None:
    """The run with its version (from the per-version cache), its workflow's slug as
    `run.workflow_slug` and whether it has step rows as `run.has_steps`, in one query.

    A plain cursor and `Run.from_db`: a raw queryset spent most of its time (0.2 ms a run)
    working out converters and the model's init order, which never change.
    """
    sql, attnames, converters = _claim_read_plan(connection.vendor)
    if connection.vendor == "postgresql":
        row = fetch_one(connection, sql, [run_id])  # prepared: every task begins with it
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, [run_id])
            row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, functions in converters:
        for convert in functions:
            values[index] = convert(values[index], column, connection)
    count = len(attnames)
    run = Run.from_db(connection.alias, attnames, values[:count])
    version_hash, run.workflow_slug, has_steps = values[count:]
    run.has_steps = bool(has_steps)
    Run.version.field.set_cached_value(
        run, cached_version(run.version_id, run.workflow_id, version_hash)
    )
    return run


@lru_cache(maxsize=4)
def _claim_read_plan(vendor: str) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    """The claim read's SQL, the Run fields it returns first, and the converters per column
    (what the ORM would apply: datetimes and JSON on SQLite, JSON on PostgreSQL)."""
    run_table = Run._meta.db_table
    version_table = WorkflowVersion._meta.db_table
    workflow_table = Workflow._meta.db_table
    step_table = StepRun._meta.db_table
    fields = Run._meta.concrete_fields
    # Column names are plain identifiers in every backend we support: quote them the ANSI way.
    columns = ", ".join(f'r."{field.column}"' for field in fields)
    sql = (
        f"SELECT {columns}, v.content_hash, w.slug, "
        f"EXISTS (SELECT 1 FROM {step_table} s WHERE s.run_id = r.id) "
        f"FROM {run_table} r JOIN {version_table} v ON v.id = r.version_id "
        f"JOIN {workflow_table} w ON w.id = r.workflow_id WHERE r.id = %s"
    )
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(run_table)
        functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if functions:
            converters.append((index, column, functions))
    return sql, [field.attname for field in fields], converters


@lru_cache(maxsize=256)
def cached_version(version_id: int, workflow_id: int, content_hash: str) -> WorkflowVersion:
    """A workflow version is immutable (its content hash names its definition): read it once.
    Callers must not change the instance or its definition."""
    return WorkflowVersion.objects.get(
        pk=version_id, workflow_id=workflow_id, content_hash=content_hash
    )


def _may_claim(run: Run, executor_id: str) -> bool:
    if run.status == Run.Status.QUEUED:
        return True
    return (
        run.status == Run.Status.RUNNING
        and run.owner != executor_id
        and (run.heartbeat_at is None or run.heartbeat_at < orphan_cutoff())
    )


def _claim_checking_capacity(run_id: int, executor_id: str) -> tuple[Run, bool] | None:
    """The claim of a concurrency-limited workflow: capacity and queue order checked under
    the workflow's row lock."""
    with write_transaction():
        now = timezone.now()  # after the write lock: a claim that waited starts now, not before
        run = (
            Run.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("version", "workflow")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return None
        if run.status == Run.Status.QUEUED:
            resumed = False
            if not _has_capacity(run):
                return None
        elif (
            run.status == Run.Status.RUNNING
            and run.owner != executor_id
            and (run.heartbeat_at is None or run.heartbeat_at < orphan_cutoff())
        ):
            resumed = True
            logger.warning(
                "Run %s: executor %s went silent; %s takes over", run.pk, run.owner, executor_id
            )
        else:
            return None
        previous_owner = run.owner
        run.status = Run.Status.RUNNING
        run.owner = executor_id
        run.heartbeat_at = now
        run.started_at = run.started_at or now
        run.deadline_at = run.deadline_at or now + timedelta(seconds=run_timeout_seconds(run))
        run.save(update_fields=["status", "owner", "heartbeat_at", "started_at", "deadline_at"])
        payload = {"executor": executor_id}
        if resumed:
            payload["resumed_from"] = previous_owner
        append_events(run.pk, [("run.started", payload)])
    return run, resumed


def _has_capacity(run: Run) -> bool:
    """Under a concurrency limit a run starts only when a slot is free and it heads the queue."""
    limit = workflow_policies(run).get("concurrency")
    if not limit:
        return True
    # Serialise claims of one workflow (PostgreSQL; SQLite's write transaction already does).
    Workflow.objects.select_for_update().filter(pk=run.workflow_id).first()
    running = Run.objects.filter(workflow_id=run.workflow_id, status=Run.Status.RUNNING).count()
    if running >= int(limit):
        return False
    head = (
        Run.objects.filter(workflow_id=run.workflow_id, status=Run.Status.QUEUED)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
        .first()
    )
    return head == run.pk


def claimable_run_ids(limit: int = 50) -> list[int]:
    """Queued runs in created order, then orphaned ones: what an idle executor should try."""
    queued = list(
        Run.objects.filter(status=Run.Status.QUEUED, parent_run__isnull=True)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    orphans = list(
        Run.objects.filter(status=Run.Status.RUNNING, heartbeat_at__lt=orphan_cutoff())
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    return queued + orphans


def finalize_run(
    run_id: int,
    status: str,
    *,
    output: Any = None,
    error: str = "",
    payload: dict[str, Any] | None = None,
    secrets: set[str] | frozenset[str] = frozenset(),
    extra: dict[str, Any] | None = None,
    limited: bool | None = None,
) -> bool:
    """Finish a run unless something else already did: one conditional UPDATE decides.

    Success, failure, cancel, timeout and the orphan path all come through here; only the
    winner appends the final event (`run.<status>`). Returns whether this call won.
    `limited` says whether the workflow has a concurrency limit (None: look it up), in which
    case the head of its queue is submitted once the transaction commits.
    """
    assert status in Run.FINAL_STATUSES, status
    output = mask(output, secrets)
    error = mask(error, secrets)
    event = final_event(status, error, payload)
    if not extra and not connection.in_atomic_block:
        won = finalize_without_django(run_id, status, output=output, error=error, payload=event)
        if won and limited is not False:
            submit_next_queued(run_id)
        return won
    with write_transaction():
        won = (
            Run.objects.filter(pk=run_id)
            .exclude(status__in=Run.FINAL_STATUSES)
            .update(
                status=status,
                output=output,
                error=error,
                finished_at=timezone.now(),
                **(extra or {}),
            )
        )
        if not won:
            return False
        append_events(run_id, [(f"run.{status}", event)])
        if limited is not False:
            transaction.on_commit(lambda: submit_next_queued(run_id))
    return True


def final_event(status: str, error: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of `run.<status>`."""
    event = {"status": status, **(payload or {})}
    if error:
        event["error"] = error
    return event


def submit_next_queued(finished_run_id: int) -> None:
    """A run of a concurrency-limited workflow ended: hand the head of its queue to the executor."""
    from infra.registry import get_executor

    run = Run.objects.select_related("version").filter(pk=finished_run_id).first()
    if run is None or not workflow_policies(run).get("concurrency"):
        return
    head = (
        Run.objects.filter(workflow_id=run.workflow_id, status=Run.Status.QUEUED)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
        .first()
    )
    if head is not None:
        get_executor().submit(head)
