"""The run loop's writes: claim, flush a turn of the loop, finish, each one transaction whose
first statement is a conditional UPDATE of the run (owner, claimable or not yet final), so a
write that lost changes nothing. On PostgreSQL most are one statement (runs.engine.pg).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from runs.engine.db import Raw, insert_step_rows, raw_transaction, update_steps, write_transaction
from runs.events import channel_messages
from runs.models import Run, StepRun


class _Rollback(Exception):
    pass


@dataclass(frozen=True)
class ClaimWrite:
    """A claim decided on a plain read, written by the run's first flush: the claim and the
    first steps' `started` records then cost one transaction, not two."""

    owner: str
    stale_before: Any  # a running run whose heartbeat is older than this may be taken over
    deadline_at: Any
    payload: dict[str, Any]  # of the run.started event
    new_steps: list[tuple[str, str]] | None = None  # (step id, node type): rows to create


def flush_run_changes(
    run_id: int,
    owner: str,
    executions: int,
    writes: dict[str, dict[str, Any]],
    events: list[tuple[str, dict[str, Any]]],
    final: tuple[str, Any, str, dict[str, Any]] | None = None,
    claim: ClaimWrite | None = None,
) -> tuple[Any, list[dict[str, Any]], bool] | None:
    """One transaction of the run loop: bump the event counter (only while `owner` still owns
    the run, or, with `claim`, while the claim can still be taken), update step rows (keyed by
    step id), insert events and, with `final` (status, output, error, event payload), finish
    the run by the conditional UPDATE of `finalize_run`. Returns (reservation, channel
    messages, whether `final` won), published after the commit, or None when the run changed
    hands or the claim lost (nothing is written)."""
    from runs.events import Reservation, publish_messages

    if connection.in_atomic_block:  # inside a caller's transaction: let Django handle it
        assert claim is None, "a deferred claim is never made inside a transaction"
        return _flush_with_django(run_id, owner, executions, writes, events, final)
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor == "postgresql" and (claim is None or final is None):
        return _flush_postgresql(conn, run_id, owner, executions, writes, events, final, claim)
    step_table = StepRun._meta.db_table
    try:
        with raw_transaction() as raw:
            won = False
            if claim is not None:
                events = [("run.started", claim.payload), *events]
                row = _claim(raw, run_id, claim, len(events), executions)
            elif final is not None and (
                row := _bump(raw, run_id, owner, executions, events, final)
            ):
                # The usual end: the last step's writes and the run's finish in one UPDATE.
                won = True
                events = [*events, (f"run.{final[0]}", final[3])]
            else:
                row = _bump(raw, run_id, owner, executions, events)
            if row is None:
                raise _Rollback
            if claim is not None and claim.new_steps:
                insert_step_rows(raw, run_id, claim.new_steps)
            for step_id, fields in writes.items():
                assignments = ", ".join(f'"{name}" = {raw.mark}' for name in fields)
                params = [raw.adapt(name, value) for name, value in fields.items()]
                raw.cursor.execute(
                    f'UPDATE "{step_table}" SET {assignments} '
                    f"WHERE run_id = {raw.mark} AND step_id = {raw.mark}",
                    [*params, run_id, step_id],
                )
            reservation = Reservation(*row)
            messages = raw.insert_events(run_id, reservation.last_seq, events)
            if claim is not None and final is not None:  # ends before any step started
                won = _finalize(raw, run_id, *final, messages=messages)
    except _Rollback:
        return None
    if messages:
        publish_messages(messages)
    return reservation, messages, won


def _flush_postgresql(conn, run_id, owner, executions, writes, events, final, claim):
    """flush_run_changes on PostgreSQL: one statement (runs.engine.pg), one round trip."""
    from runs.engine.pg import execute_one, flush_statement
    from runs.events import Reservation, publish_messages

    if claim is not None:
        events = [("run.started", claim.payload), *events]
    now = timezone.now()
    sql, params = flush_statement(
        run_id, owner, executions, writes, events, now, final=final, claim=claim
    )
    row = execute_one(conn, sql, params)
    if row is None:
        return None
    *counters, won = row
    if won:
        events = [*events, (f"run.{final[0]}", final[3])]
    reservation = Reservation(*counters)
    messages = channel_messages(run_id, reservation.last_seq - len(events) + 1, events, now)
    if messages:
        publish_messages(messages)
    return reservation, messages, bool(won)


def _bump(
    raw: Raw,
    run_id: int,
    owner: str,
    executions: int,
    events: list[tuple[str, dict[str, Any]]],
    final: tuple[str, Any, str, dict[str, Any]] | None = None,
) -> tuple[Any, ...] | None:
    """Take sequence numbers for `events` and count step executions while `owner` owns the run;
    with `final` (status, output, error, event payload) also finish it, one more number for
    its event, unless it is final already. None when the condition fails."""
    table = Run._meta.db_table
    returning = " RETURNING last_event_seq, status, owner, step_executions"
    if final is None:
        raw.cursor.execute(
            raw.sql(
                f"UPDATE {table} SET last_event_seq = last_event_seq + %s, "
                "step_executions = step_executions + %s WHERE id = %s AND owner = %s" + returning
            ),
            (len(events), executions, run_id, owner),
        )
        return raw.cursor.fetchone()
    status, output, error, _payload = final
    final_statuses = tuple(Run.FINAL_STATUSES)
    raw.cursor.execute(
        raw.sql(
            f"UPDATE {table} SET last_event_seq = last_event_seq + %s, "
            "step_executions = step_executions + %s, status = %s, output = %s, error = %s, "
            "finished_at = %s WHERE id = %s AND owner = %s "
            f"AND status NOT IN ({', '.join(['%s'] * len(final_statuses))})" + returning
        ),
        (
            len(events) + 1,
            executions,
            status,
            raw.adapt("output", output),
            error,
            raw.adapt("finished_at", raw.now),
            run_id,
            owner,
            *final_statuses,
        ),
    )
    return raw.cursor.fetchone()


def _claim(
    raw: Raw, run_id: int, claim: ClaimWrite, event_count: int, executions: int = 0
) -> tuple[Any, ...] | None:
    """The conditional UPDATE that takes a run that is queued, or running with a silent owner:
    of two executors claiming at once exactly one gets a row back."""
    now = raw.adapt("heartbeat_at", raw.now)
    raw.cursor.execute(
        raw.sql(
            f"UPDATE {Run._meta.db_table} SET status = 'running', owner = %s, "
            "heartbeat_at = %s, started_at = COALESCE(started_at, %s), "
            "deadline_at = COALESCE(deadline_at, %s), last_event_seq = last_event_seq + %s, "
            "step_executions = step_executions + %s "
            "WHERE id = %s AND (status = 'queued' OR (status = 'running' AND owner <> %s "
            "AND (heartbeat_at IS NULL OR heartbeat_at < %s))) "
            "RETURNING last_event_seq, status, owner, step_executions"
        ),
        (
            claim.owner,
            now,
            now,
            raw.adapt("deadline_at", claim.deadline_at),
            event_count,
            executions,
            run_id,
            claim.owner,
            raw.adapt("heartbeat_at", claim.stale_before),
        ),
    )
    return raw.cursor.fetchone()


def claim_without_limit(run_id: int, claim: ClaimWrite) -> bool:
    """Take a run and append `run.started` now, in a transaction of its own (see `_claim`);
    with `claim.new_steps` (a run fresh from the queue), create its pending step rows in the
    same transaction. False when the claim lost."""
    from runs.events import publish_messages

    with raw_transaction() as raw:
        row = _claim(raw, run_id, claim, 1)
        if row is None:
            return False
        messages = raw.insert_events(run_id, row[0], [("run.started", claim.payload)])
        if claim.new_steps:
            insert_step_rows(raw, run_id, claim.new_steps)
    publish_messages(messages)
    return True


def finalize_without_django(
    run_id: int, status: str, *, output: Any, error: str, payload: dict[str, Any]
) -> bool:
    """The conditional UPDATE that finishes a run (see claims.finalize_run), plus its event."""
    from runs.events import publish_messages

    messages: list[dict[str, Any]] = []
    with raw_transaction() as raw:
        won = _finalize(raw, run_id, status, output, error, payload, messages=messages)
    if messages:
        publish_messages(messages)
    return won


def _finalize(
    raw: Raw,
    run_id: int,
    status: str,
    output: Any,
    error: str,
    payload: dict[str, Any],
    *,
    messages: list[dict[str, Any]],
) -> bool:
    final = tuple(Run.FINAL_STATUSES)
    raw.cursor.execute(
        raw.sql(
            f"UPDATE {Run._meta.db_table} SET status = %s, output = %s, error = %s, "
            "finished_at = %s, last_event_seq = last_event_seq + 1 "
            f"WHERE id = %s AND status NOT IN ({', '.join(['%s'] * len(final))}) "
            "RETURNING last_event_seq"
        ),
        (
            status,
            raw.adapt("output", output),
            error,
            raw.adapt("finished_at", raw.now),
            run_id,
            *final,
        ),
    )
    row = raw.cursor.fetchone()
    if row is None:
        return False
    messages += raw.insert_events(run_id, row[0], [(f"run.{status}", payload)])
    return True


def _flush_with_django(run_id, owner, executions, writes, events, final=None):
    from runs.engine.claims import finalize_run
    from runs.events import insert_events, reserve_seqs

    with write_transaction():
        reservation = reserve_seqs(run_id, len(events), step_executions=executions, owner=owner)
        if reservation is None:
            return None
        update_steps(run_id, writes)
        messages = insert_events(run_id, reservation, events) if events else []
        won = False
        if final is not None:
            status, output, error, payload = final
            won = finalize_run(
                run_id, status, output=output, error=error, payload=payload, limited=False
            )
    return reservation, messages, won
