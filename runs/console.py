"""What the console shows of a run: one consistent snapshot for the run page and its refreshes.

The snapshot carries `last_event_seq`, the cursor the page's WebSocket resumes from; it is read
in the same database snapshot as the steps, so replaying events after it neither misses a
change nor repeats a log line already on the page.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from credentials.masking import mask_remembered
from runs.models import Run, RunEvent, StepRun

SHOWN_STEP_FIELDS = ("input", "output", "error", "logs")
DONE_STEP_STATUSES = (
    StepRun.Status.SUCCEEDED,
    StepRun.Status.FAILED,
    StepRun.Status.SKIPPED,
    StepRun.Status.CANCELLED,
)


def definition_steps(run: Run) -> list[dict[str, Any]]:
    steps = (run.version.definition or {}).get("steps") or []
    return [s for s in steps if isinstance(s, dict) and s.get("id")]


def run_snapshot(run_id: int) -> dict[str, Any]:
    """The run, its steps in definition order (pending ones included) and the event cursor."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            # Read committed would give each query its own snapshot; the page needs one.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        run = Run.objects.select_related("workflow", "version", "triggered_by").get(pk=run_id)
        rows = {s.step_id: s for s in StepRun.objects.filter(run_id=run_id)}
        live_logs = _live_logs(run, rows)
    for step_id, text in live_logs.items():
        rows[step_id].logs = text
    steps = [step_state(rows.get(d["id"]), d) for d in definition_steps(run)]
    # Steps the engine recorded that the definition does not name (never expected) still show.
    known = {s["id"] for s in steps}
    steps += [step_state(row, None) for sid, row in rows.items() if sid not in known]
    # The engine stores everything masked already; this only catches a secret this process
    # has seen that a stored value still holds (defence in depth, never the only guard).
    steps = [{**s, **mask_remembered({k: s[k] for k in SHOWN_STEP_FIELDS})} for s in steps]
    done = sum(1 for s in steps if s["status"] in DONE_STEP_STATUSES)
    return {
        "run": run,
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "is_final": run.is_final,
        "output": mask_remembered(run.output),
        "error": mask_remembered(run.error),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": _duration_ms(run.started_at, run.finished_at),
        "last_event_seq": run.last_event_seq,
        "steps": steps,
        "progress": {"done": done, "total": len(steps)},
    }


def _live_logs(run: Run, rows: dict[str, StepRun]) -> dict[str, str]:
    """Log lines of steps still running, from their events: the engine writes a step's logs
    column only when the attempt ends, and the page must show what already streamed."""
    running = {
        sid: row.attempt
        for sid, row in rows.items()
        if row.status in (StepRun.Status.RUNNING, StepRun.Status.RETRYING) and not row.logs
    }
    if not running:
        return {}
    lines: dict[str, list[str]] = {sid: [] for sid in running}
    events = RunEvent.objects.filter(
        run=run, type="step.log", seq__lte=run.last_event_seq, payload__step__in=list(running)
    ).order_by("seq")
    for payload in events.values_list("payload", flat=True).iterator():
        sid = payload.get("step")
        if payload.get("attempt") in (None, running[sid]):
            lines[sid].append(str(payload.get("text", "")))
    return {sid: "\n".join(text) for sid, text in lines.items() if text}


def step_state(row: StepRun | None, definition: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {
            "id": definition["id"],
            "type": definition.get("type", ""),
            "status": StepRun.Status.PENDING.value,
            "attempt": 0,
            "duration_ms": None,
            "started_at": None,
            "input": None,
            "output": None,
            "error": "",
            "logs": "",
        }
    return {
        "id": row.step_id,
        "type": row.node_type,
        "status": row.status,
        "attempt": row.attempt,
        "duration_ms": row.duration_ms,
        "started_at": row.started_at,
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "logs": row.logs,
    }


def snapshot_json(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as JSON for the page's refreshes (no model instances, ISO dates)."""
    data = {k: v for k, v in snapshot.items() if k != "run"}
    for key in ("started_at", "finished_at"):
        data[key] = data[key].isoformat() if data[key] else None
    data["steps"] = [
        {**s, "started_at": s["started_at"].isoformat() if s["started_at"] else None}
        for s in snapshot["steps"]
    ]
    return data


def _duration_ms(started, finished) -> int | None:
    if not started or not finished:
        return None
    return int((finished - started).total_seconds() * 1000)
