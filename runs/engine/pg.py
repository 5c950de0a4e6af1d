"""The run loop's flush on PostgreSQL as one statement: one round trip instead of five.

Data-modifying CTEs: `upd` bumps the run's counters (and claims or finishes it), and every other
part (step rows, events) is joined to `upd`, so when its condition fails (the run changed
hands, the claim lost) nothing at all is written. A single statement in autocommit mode is its
own transaction. SQLite has no data-modifying CTEs; it keeps the statements of
`runs.engine.writes.flush_run_changes`.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from typing import Any

import psycopg
from django.conf import settings
from psycopg.types.json import Jsonb

from runs.models import Run, RunEvent, StepRun

_JSON = {"input", "output", "payload"}
# psycopg prepares a statement by itself once it ran this many times: never, in effect.
ONLY_WHEN_ASKED = 2**31 - 1
# A new step row's own columns (besides run, step id and node type): their model defaults,
# which a write of the same flush overrides, and their database types for the casts.
_STEP_KEYS = {"id", "run_id", "step_id", "node_type"}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value  # a choices default: its value


@lru_cache(maxsize=1)
def _step_columns() -> list[tuple[str, Any, str]]:
    from django.db import connection

    return [
        (field.attname, _plain(field.get_default()), field.db_type(connection))
        for field in StepRun._meta.concrete_fields
        if field.attname not in _STEP_KEYS
    ]


class _Params(dict):
    """Named parameters: parts of the statement are built out of textual order."""

    def add(self, value: Any, column: str = "") -> str:
        name = f"p{len(self)}"
        self[name] = Jsonb(value) if column in _JSON and value is not None else value
        return f"%({name})s"


def flush_statement(
    run_id: int,
    owner: str,
    executions: int,
    writes: dict[str, dict[str, Any]],
    events: list[tuple[str, dict[str, Any]]],
    now: Any,
    *,
    final: tuple[str, Any, str, dict[str, Any]] | None = None,
    claim: Any = None,
) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters; the statement returns (last_event_seq, status, owner,
    step_executions, won) or no row. `events` come first, then the final event if it won."""
    assert not (claim is not None and final is not None), "a run that ends at its claim"
    p = _Params()
    run_table, step_table = Run._meta.db_table, StepRun._meta.db_table
    returning = "RETURNING r.last_event_seq, r.status, r.owner, r.step_executions"
    ctes = []
    if claim is not None:
        ctes.append(
            f"upd AS (UPDATE {run_table} r SET status = 'running', owner = {p.add(owner)}, "
            f"heartbeat_at = {p.add(now)}, started_at = COALESCE(r.started_at, {p.add(now)}), "
            f"deadline_at = COALESCE(r.deadline_at, {p.add(claim.deadline_at)}), "
            f"last_event_seq = r.last_event_seq + {p.add(len(events))}, "
            f"step_executions = r.step_executions + {p.add(executions)} "
            f"WHERE r.id = {p.add(run_id)} AND (r.status = 'queued' OR (r.status = 'running' "
            f"AND r.owner <> {p.add(owner)} AND (r.heartbeat_at IS NULL "
            f"OR r.heartbeat_at < {p.add(claim.stale_before)}))) {returning}, FALSE AS won)"
        )
    elif final is not None:
        status, output, error, _payload = final
        finals = ", ".join(p.add(s) for s in Run.FINAL_STATUSES)
        ctes.append(
            f"prev AS (SELECT id, status NOT IN ({finals}) AS open FROM {run_table} "
            f"WHERE id = {p.add(run_id)} AND owner = {p.add(owner)} FOR UPDATE)"
        )
        ctes.append(
            f"upd AS (UPDATE {run_table} r SET last_event_seq = r.last_event_seq + "
            f"{p.add(len(events))} + CASE WHEN prev.open THEN 1 ELSE 0 END, "
            f"step_executions = r.step_executions + {p.add(executions)}, "
            f"status = CASE WHEN prev.open THEN {p.add(status)}::text ELSE r.status END, "
            f"output = CASE WHEN prev.open THEN {p.add(output, 'output')}::jsonb "
            "ELSE r.output END, "
            f"error = CASE WHEN prev.open THEN {p.add(error)}::text ELSE r.error END, "
            f"finished_at = CASE WHEN prev.open THEN {p.add(now)}::timestamptz "
            f"ELSE r.finished_at END FROM prev WHERE r.id = prev.id {returning}, prev.open AS won)"
        )
    else:
        ctes.append(
            f"upd AS (UPDATE {run_table} r SET last_event_seq = r.last_event_seq + "
            f"{p.add(len(events))}, step_executions = r.step_executions + {p.add(executions)} "
            f"WHERE r.id = {p.add(run_id)} AND r.owner = {p.add(owner)} {returning}, "
            "FALSE AS won)"
        )

    if claim is not None and claim.new_steps:
        ctes.append(_insert_steps(p, step_table, run_id, claim.new_steps, writes))
    else:
        for index, (step_id, fields) in enumerate(writes.items()):
            assignments = ", ".join(f'"{name}" = {p.add(v, name)}' for name, v in fields.items())
            ctes.append(
                f"s{index} AS (UPDATE {step_table} SET {assignments} "
                f"WHERE run_id = {p.add(run_id)} AND step_id = {p.add(step_id)} "
                "AND EXISTS (SELECT 1 FROM upd))"
            )

    event_table = RunEvent._meta.db_table
    columns = f"INSERT INTO {event_table} (run_id, seq, type, payload, created_at)"
    if events:
        rows = ", ".join(
            f"({i}, {p.add(type_)}::text, {p.add(payload, 'payload')}::jsonb)"
            for i, (type_, payload) in enumerate(events, 1)
        )
        ctes.append(
            f"ev AS ({columns} SELECT {p.add(run_id)}, upd.last_event_seq - {p.add(len(events))}"
            f" - CASE WHEN upd.won THEN 1 ELSE 0 END + v.i, v.t, v.p, {p.add(now)} "
            f"FROM upd, (VALUES {rows}) AS v(i, t, p))"
        )
    if final is not None:
        status, _output, _error, payload = final
        ctes.append(
            f"fin AS ({columns} SELECT {p.add(run_id)}, upd.last_event_seq, "
            f"{p.add('run.' + status)}, {p.add(payload, 'payload')}, {p.add(now)} "
            "FROM upd WHERE upd.won)"
        )
    sql = f"WITH {', '.join(ctes)} SELECT last_event_seq, status, owner, step_executions, won FROM upd"
    return sql, p


def _insert_steps(
    p: _Params,
    step_table: str,
    run_id: int,
    steps: list[tuple[str, str]],
    writes: dict[str, dict[str, Any]],
) -> str:
    """A fresh run's step rows, each with what this flush writes to it: the rows do not exist
    yet, and a CTE cannot update rows another CTE of the statement inserts."""
    columns = _step_columns()
    names = [name for name, _default, _type in columns]
    unknown = {name for fields in writes.values() for name in fields} - set(names)
    assert not unknown, f"no column for {unknown}"
    rows = []
    for step_id, node_type in steps:
        fields = writes.get(step_id, {})
        cells = [f"{p.add(step_id)}::text", f"{p.add(node_type)}::text"]
        cells += [
            f"{p.add(fields.get(name, default), name)}::{db_type}"
            for name, default, db_type in columns
        ]
        rows.append(f"({', '.join(cells)})")
    column_list = ", ".join(f'"{n}"' for n in names)
    return (
        f"ins AS (INSERT INTO {step_table} (run_id, step_id, node_type, {column_list}) "
        f"SELECT {p.add(run_id)}, v.* FROM upd, (VALUES {', '.join(rows)}) "
        f"AS v(step_id, node_type, {column_list}))"
    )


def insert_run_statement(
    columns: list[str], values: list[Any], event_payload: dict[str, Any], now: Any
) -> tuple[str, dict[str, Any]]:
    """A new run and its `run.queued` event (number 1) in one statement; returns the run id."""
    p = _Params()
    marks = ", ".join(p.add(value) for value in values)
    column_list = ", ".join(f'"{column}"' for column in columns)
    event_table = RunEvent._meta.db_table
    sql = (
        f"WITH r AS (INSERT INTO {Run._meta.db_table} ({column_list}) VALUES ({marks}) "
        f"RETURNING id), e AS (INSERT INTO {event_table} (run_id, seq, type, payload, "
        f"created_at) SELECT r.id, 1, 'run.queued', {p.add(event_payload, 'payload')}, "
        f"{p.add(now)} FROM r) SELECT id FROM r"
    )
    return sql, p


def execute_one(connection: Any, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run one statement on Django's connection (autocommit: it is its own transaction) with a
    server-side-binding cursor, Django's client-side one quoting every value in Python; errors
    come out as Django's (IntegrityError...)."""
    assert not connection.in_atomic_block
    return fetch_one(connection, sql, params)


def fetch_one(connection: Any, sql: str, params: Any) -> tuple[Any, ...] | None:
    """The first row of one statement on Django's connection, through a server-side-binding
    cursor and, unless settings say otherwise, as a prepared statement: the engine's statements
    come in a few shapes per workflow, and parsing and planning them again each time was about
    a third of the database's CPU per run."""
    connection.ensure_connection()
    raw = connection.connection
    prepare = settings.DATABASE_PREPARED_STATEMENTS
    if prepare and raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None), which also ignores prepare=True. A
        # threshold never reached prepares exactly the statements asked for (the ORM's
        # client-side-binding cursors never prepare anything either way).
        raw.prepare_threshold = ONLY_WHEN_ASKED
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchone()
