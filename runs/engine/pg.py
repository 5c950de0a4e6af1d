"""The run loop's flush on PostgreSQL as one statement: one round trip instead of five.

Data-modifying CTEs: `upd` bumps the run's counters (and claims or finishes it), and every other
part (step rows, events) is joined to `upd`, so when its condition fails (the run changed
hands, the claim lost) nothing at all is written. A single statement in autocommit mode is its
own transaction. SQLite has no data-modifying CTEs; it keeps the statements of
`runs.engine.writes.flush_run_changes`.
"""

from __future__ import annotations

import json
from datetime import datetime
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
# A step row's own columns (besides run, step id and node type).
_STEP_KEYS = {"id", "run_id", "step_id", "node_type"}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value  # a choices default: its value


@lru_cache(maxsize=1)
def _step_columns() -> list[tuple[str, Any, str]]:
    """(column, model default, database type) of a step row's own columns."""
    from django.db import connection

    return [
        (field.attname, _plain(field.get_default()), field.db_type(connection))
        for field in StepRun._meta.concrete_fields
        if field.attname not in _STEP_KEYS
    ]


@lru_cache(maxsize=1)
def _step_defaults() -> dict[str, Any]:
    return {name: default for name, default, _type in _step_columns()}


def _step_value(name: str, db_type: str) -> str:
    """SQL for column `name` read from the JSON object `v.f` of one step's changes."""
    if name in _JSON:
        return f"NULLIF(v.f -> '{name}', 'null'::jsonb)"  # None is stored as SQL NULL
    return f"(v.f ->> '{name}')::{db_type}"


def _json(value: Any) -> str:
    """Step changes and events as one JSON parameter (datetimes in full precision)."""
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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
    step_executions, won) or no row. `events` come first, then the final event if it won.

    The step changes and the events travel as one JSON parameter each, so the statement has
    one of three texts (claim, turn, final) whatever the run: psycopg converts it once and
    PostgreSQL plans it once per connection.
    """
    assert not (claim is not None and final is not None), "a run that ends at its claim"
    defaults = _step_defaults()
    unknown = {name for fields in writes.values() for name in fields} - defaults.keys()
    assert not unknown, f"no step column for {unknown}"
    params: dict[str, Any] = {
        "run": run_id,
        "owner": owner,
        "executions": executions,
        "count": len(events),
        "now": now,
        "events": _json([[type_, payload] for type_, payload in events]),
    }
    if claim is not None:
        assert claim.new_steps, "a deferred claim always creates the run's step rows"
        steps = [
            {"id": step_id, "type": node_type, "f": {**defaults, **writes.get(step_id, {})}}
            for step_id, node_type in claim.new_steps
        ]
        params.update(deadline=claim.deadline_at, stale=claim.stale_before)
        kind = "claim"
    else:
        steps = [{"id": step_id, "f": fields} for step_id, fields in writes.items()]
        kind = "turn"
    if final is not None:
        status, output, error, payload = final
        params.update(
            status=status,
            output=Jsonb(output) if output is not None else None,
            error=error,
            final_type=f"run.{status}",
            final_payload=Jsonb(payload),
        )
        kind = "final"
    params["steps"] = _json(steps)
    return _flush_sql(kind), params


@lru_cache(maxsize=4)
def _flush_sql(kind: str) -> str:
    run_table, step_table = Run._meta.db_table, StepRun._meta.db_table
    returning = "RETURNING r.last_event_seq, r.status, r.owner, r.step_executions"
    won = "FALSE AS won"
    if kind == "claim":
        head = (
            f"upd AS (UPDATE {run_table} r SET status = 'running', owner = %(owner)s, "
            "heartbeat_at = %(now)s, started_at = COALESCE(r.started_at, %(now)s), "
            "deadline_at = COALESCE(r.deadline_at, %(deadline)s), "
            "last_event_seq = r.last_event_seq + %(count)s, "
            "step_executions = r.step_executions + %(executions)s "
            "WHERE r.id = %(run)s AND (r.status = 'queued' OR (r.status = 'running' "
            "AND r.owner <> %(owner)s AND (r.heartbeat_at IS NULL "
            f"OR r.heartbeat_at < %(stale)s))) {returning}, {won})"
        )
    elif kind == "final":
        finals = ", ".join(f"'{status}'" for status in Run.FINAL_STATUSES)
        head = (
            f"prev AS (SELECT id, status NOT IN ({finals}) AS open FROM {run_table} "
            "WHERE id = %(run)s AND owner = %(owner)s FOR UPDATE), "
            f"upd AS (UPDATE {run_table} r SET last_event_seq = r.last_event_seq + "
            "%(count)s + CASE WHEN prev.open THEN 1 ELSE 0 END, "
            "step_executions = r.step_executions + %(executions)s, "
            "status = CASE WHEN prev.open THEN %(status)s::text ELSE r.status END, "
            "output = CASE WHEN prev.open THEN %(output)s::jsonb ELSE r.output END, "
            "error = CASE WHEN prev.open THEN %(error)s::text ELSE r.error END, "
            "finished_at = CASE WHEN prev.open THEN %(now)s::timestamptz "
            f"ELSE r.finished_at END FROM prev WHERE r.id = prev.id {returning}, "
            "prev.open AS won)"
        )
    else:
        head = (
            f"upd AS (UPDATE {run_table} r SET last_event_seq = r.last_event_seq + "
            "%(count)s, step_executions = r.step_executions + %(executions)s "
            f"WHERE r.id = %(run)s AND r.owner = %(owner)s {returning}, {won})"
        )
    columns = _step_columns()
    names = ", ".join(f'"{name}"' for name, _default, _type in columns)
    if kind == "claim":
        # The rows do not exist yet (a CTE cannot update rows another CTE inserts): each is
        # inserted with this flush's changes over the model's defaults.
        values = ", ".join(_step_value(name, db_type) for name, _default, db_type in columns)
        steps = (
            f"st AS (INSERT INTO {step_table} (run_id, step_id, node_type, {names}) "
            f"SELECT %(run)s, v.id, v.type, {values} FROM upd, "
            "jsonb_to_recordset(%(steps)s::jsonb) AS v(id text, type text, f jsonb))"
        )
    else:
        # Only the columns a step's changes name: the others keep their value.
        assignments = ", ".join(
            f"\"{name}\" = CASE WHEN v.f ? '{name}' THEN {_step_value(name, db_type)} "
            f'ELSE t."{name}" END'
            for name, _default, db_type in columns
        )
        steps = (
            f"st AS (UPDATE {step_table} t SET {assignments} FROM upd, "
            "jsonb_to_recordset(%(steps)s::jsonb) AS v(id text, f jsonb) "
            "WHERE t.run_id = %(run)s AND t.step_id = v.id)"
        )
    event_table = RunEvent._meta.db_table
    insert = f"INSERT INTO {event_table} (run_id, seq, type, payload, created_at)"
    # The events are numbered after the counter's old value: new value - count (- the final's).
    events = (
        f"ev AS ({insert} SELECT %(run)s, upd.last_event_seq - %(count)s "
        "- CASE WHEN upd.won THEN 1 ELSE 0 END + e.n, e.item ->> 0, e.item -> 1, %(now)s "
        "FROM upd, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(item, n))"
    )
    ctes = [head, steps, events]
    if kind == "final":
        ctes.append(
            f"fin AS ({insert} SELECT %(run)s, upd.last_event_seq, %(final_type)s, "
            "%(final_payload)s, %(now)s FROM upd WHERE upd.won)"
        )
    return (
        f"WITH {', '.join(ctes)} SELECT last_event_seq, status, owner, step_executions, won "
        "FROM upd"
    )


class _Params(dict):
    """Named parameters, added as the statement is written."""

    def add(self, value: Any, column: str = "") -> str:
        name = f"p{len(self)}"
        self[name] = Jsonb(value) if column in _JSON and value is not None else value
        return f"%({name})s"


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
